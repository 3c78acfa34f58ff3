//! The upstream HTTP client every provider uses: hyper's pooled client (keep-alive, HTTP/1.1
//! and HTTP/2 negotiated by ALPN, rustls with the webpki roots) with nothing between a provider
//! and the connection pool. A general-purpose client would add redirect following (and parse
//! every request's URL again for it), a retry wrapper and proxy matching per request; an LLM API
//! answers where it is asked, so those cost every call and buy nothing. Transport failures map
//! to [`ProviderError`]s that never carry the URL.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyDataStream, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::{ProviderError, ProviderErrorKind};

/// Largest upstream response body read whole (a stream is read event by event instead).
pub const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("gatehouse/", env!("CARGO_PKG_VERSION")));

/// How many connection pools one client keeps at most (see [`set_pool_slot`]): one per
/// serving thread (at most 64) and the shared one.
const MAX_POOLS: usize = 65;

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

thread_local! {
    static POOL_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Makes calls from the current thread use connection pool `slot` of every client. A thread
/// that serves requests on its own single-threaded runtime takes a slot of its own, so the
/// connections it uses are driven by tasks on that same thread: a request never waits for
/// another thread to write or read its upstream connection. Other threads share slot 0.
pub fn set_pool_slot(slot: usize) {
    POOL_SLOT.with(|s| s.set(slot % MAX_POOLS));
}

/// A pooled upstream client; clones share the pools. Each serving thread has its own pool
/// ([`set_pool_slot`]), built on its first call.
#[derive(Clone)]
pub struct HttpClient {
    connector: HttpsConnector<HttpConnector>,
    pools: Arc<[OnceLock<Pool>]>,
}

impl HttpClient {
    /// A client whose connection attempts give up after `connect_timeout`. Idle connections
    /// are kept 90 s, up to 256 per host and pool.
    pub fn new(connect_timeout: Duration) -> HttpClient {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_keepalive(Some(Duration::from_secs(60)));
        let connector = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        HttpClient {
            connector,
            pools: (0..MAX_POOLS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn pool(&self) -> &Pool {
        let slot = POOL_SLOT.with(Cell::get);
        self.pools[slot].get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(256)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(self.connector.clone())
        })
    }

    /// `POST uri` with a JSON body.
    pub fn post_json(&self, uri: &Endpoint, body: Vec<u8>) -> PostBuilder<'_> {
        self.post(uri, body).header(CONTENT_TYPE, JSON)
    }

    /// `POST uri` with any body (set its content type with [`PostBuilder::header`]).
    pub fn post(&self, uri: &Endpoint, body: Vec<u8>) -> PostBuilder<'_> {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(USER_AGENT, AGENT);
        PostBuilder {
            client: self,
            uri: uri.uri.clone(),
            headers,
            body,
            timeout: None,
        }
    }
}

/// A client with a 10 s connect timeout (the gateway builds its clients from each provider's
/// configured timeout instead).
impl Default for HttpClient {
    fn default() -> HttpClient {
        HttpClient::new(Duration::from_secs(10))
    }
}

/// An upstream URL, parsed once when the provider is built.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `None` when the configured URL does not parse: calls then fail as connect errors.
    uri: Option<Uri>,
}

impl Endpoint {
    pub fn new(url: &str) -> Endpoint {
        Endpoint {
            uri: url.parse().ok(),
        }
    }
}

/// One request being built (as with `reqwest`'s builder, minus what upstream APIs never need).
pub struct PostBuilder<'a> {
    client: &'a HttpClient,
    uri: Option<Uri>,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

impl PostBuilder<'_> {
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Headers built once by the provider (credentials, API versions).
    pub fn headers(mut self, extra: &[(HeaderName, HeaderValue)]) -> Self {
        for (name, value) in extra {
            self.headers.insert(name.clone(), value.clone());
        }
        self
    }

    /// Bounds the whole exchange: the response head here, and reading the body with
    /// [`UpstreamResponse::bytes`]. Streams are bounded by the gateway's own limits instead.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub async fn send(self) -> Result<UpstreamResponse, ProviderError> {
        let Some(uri) = self.uri else {
            return Err(connect_error());
        };
        let mut req = Request::new(Full::new(Bytes::from(self.body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        *req.headers_mut() = self.headers;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let call = self.client.pool().request(req);
        let resp = match deadline {
            Some(d) => tokio::time::timeout_at(d, call)
                .await
                .map_err(|_| timeout_error())?,
            None => call.await,
        }
        .map_err(|_| connect_error())?;
        Ok(UpstreamResponse { resp, deadline })
    }
}

/// A response whose head arrived.
pub struct UpstreamResponse {
    resp: http::Response<Incoming>,
    deadline: Option<Instant>,
}

impl UpstreamResponse {
    pub fn status(&self) -> StatusCode {
        self.resp.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.resp.headers()
    }

    /// The whole body, within the request's timeout and [`MAX_RESPONSE_BYTES`].
    pub async fn bytes(self) -> Result<Bytes, ProviderError> {
        let read = Limited::new(self.resp.into_body(), MAX_RESPONSE_BYTES).collect();
        let collected = match self.deadline {
            Some(d) => tokio::time::timeout_at(d, read)
                .await
                .map_err(|_| timeout_error())?,
            None => read.await,
        };
        match collected {
            Ok(body) => Ok(body.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ProviderError::new(
                ProviderErrorKind::Decode,
                "upstream response exceeds the size limit",
            )),
            Err(_) => Err(connect_error()),
        }
    }

    /// The body as it arrives, one network read per item.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, hyper::Error>> + Send + Unpin {
        BodyDataStream::new(self.resp.into_body())
    }
}

/// A request body as JSON.
pub fn json_body<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(value).map_err(|_| ProviderError::unencodable())
}

fn timeout_error() -> ProviderError {
    ProviderError::new(ProviderErrorKind::Timeout, "upstream timed out")
}

fn connect_error() -> ProviderError {
    ProviderError::new(ProviderErrorKind::Connect, "could not reach the upstream")
}

/// A credential header built once, marked sensitive so no `Debug` of a header map prints it.
/// `None` for a value no header can carry (the call then goes out without it and the
/// upstream's 401 says why).
pub fn secret_header(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}
