//! The HTTP server: one accept loop handing connections to serving threads, each running a
//! single-threaded runtime of its own (`server.threads`, one per core by default).
//!
//! A connection stays on the thread that received it, and so do the upstream connections its
//! requests use (each serving thread has its own upstream pool, see
//! [`providers::client::set_pool_slot`]): a request is parsed, proxied and answered without
//! waking another thread. A work-stealing runtime would move tasks between threads and wake
//! idle ones for every new event, which on a small machine costs more than the proxying.
//! With `threads = 0` connections are served on the runtime that started the server instead
//! (embedding, and tests that drive the clock by hand).
//!
//! Shutdown: stop accepting, ask every connection to finish its in-flight request or stream
//! and close (HTTP/1 keep-alive ends, HTTP/2 sends GOAWAY), and after the grace period close
//! whatever is left. Serving threads keep their runtimes (and the tasks requests spawned, such
//! as cache writes) until [`Server::finish`].

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// What connections are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serve,
    /// Finish the request or stream in flight, then close.
    Drain,
    /// Close now (the grace period is over).
    Close,
}

/// A running server: its accept loop and serving threads.
pub struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// Dropped (or sent) to let the serving threads drop their runtimes.
    release: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A serving thread as the accept loop sees it.
struct Worker {
    conns: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    /// Connections it serves now.
    open: Arc<AtomicUsize>,
    /// Resolves when the thread has served its last connection.
    drained: oneshot::Receiver<()>,
}

/// How many serving threads `threads` asks for: `None` means one per core.
pub fn resolve_threads(threads: Option<usize>) -> usize {
    threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Server {
    /// Starts serving `app` on `listener` with `threads` serving threads (0: on the current
    /// runtime). In-flight requests get `grace` to finish once [`Server::shutdown`] is called.
    pub fn start(
        listener: TcpListener,
        app: Router,
        threads: usize,
        grace: Duration,
    ) -> std::io::Result<Server> {
        let (phase_tx, phase_rx) = watch::channel(Phase::Serve);
        let mut workers = Vec::with_capacity(threads);
        let mut release = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (conns_tx, conns_rx) = mpsc::unbounded_channel();
            let (drained_tx, drained_rx) = oneshot::channel();
            let (release_tx, release_rx) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let ctx = WorkerContext {
                slot: i + 1,
                app: app.clone(),
                phase: phase_rx.clone(),
                open: Arc::clone(&open),
            };
            let handle = std::thread::Builder::new()
                .name(format!("gatehouse-serve-{i}"))
                .spawn(move || ctx.run(conns_rx, drained_tx, release_rx))?;
            workers.push(Worker {
                conns: conns_tx,
                open,
                drained: drained_rx,
            });
            release.push(release_tx);
            handles.push(handle);
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(
            listener, app, workers, phase_tx, phase_rx, stop_rx, grace,
        ));
        Ok(Server {
            stop: Some(stop_tx),
            task,
            release,
            threads: handles,
        })
    }

    /// Stops accepting and waits until every connection is closed (gracefully within the
    /// grace period, then forcibly).
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Ends the serving threads (after [`Server::shutdown`]): their runtimes, and any task a
    /// request left running there, are dropped.
    pub async fn finish(mut self) {
        self.release.clear();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Without a shutdown, connections are closed at once.
        if !self.task.is_finished() {
            self.task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    workers: Vec<Worker>,
    phase_tx: watch::Sender<Phase>,
    phase_rx: watch::Receiver<Phase>,
    mut stop: oneshot::Receiver<()>,
    grace: Duration,
) {
    // Connections served on this runtime (threads = 0) hold a clone; all gone = all closed.
    let (local_tx, local_rx) = watch::channel(());
    // Aborting this task (the server dropped without a shutdown) closes every connection.
    let _close_on_drop = CloseOnDrop(phase_tx.clone());
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if !is_connection_error(&e) {
                    // Out of file descriptors and the like: wait before trying again.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut stream = Some(stream);
        // The live thread with the fewest connections gets the new one.
        while let Some(s) = stream.take() {
            let Some(w) = workers
                .iter()
                .filter(|w| !w.conns.is_closed())
                .min_by_key(|w| w.open.load(Ordering::Relaxed))
            else {
                // No serving thread (threads = 0, or every one failed to start): serve here.
                tokio::spawn(serve_connection(
                    s,
                    remote,
                    app.clone(),
                    phase_rx.clone(),
                    local_rx.clone(),
                ));
                break;
            };
            match s.into_std() {
                Ok(std) => {
                    w.open.fetch_add(1, Ordering::Relaxed);
                    if let Err(back) = w.conns.send((std, remote)) {
                        // That thread is gone; try the next one.
                        w.open.fetch_sub(1, Ordering::Relaxed);
                        stream = TcpStream::from_std(back.0.0).ok();
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not hand over a connection"),
            }
        }
    }
    drop(listener);
    // Dropping the senders ends each serving thread's intake.
    let mut drained: Vec<_> = workers.into_iter().map(|w| w.drained).collect();
    drop(local_rx);
    let _ = phase_tx.send(Phase::Drain);
    let all_closed = async {
        local_tx.closed().await;
        for d in drained.iter_mut() {
            let _ = d.await;
        }
    };
    let mut all_closed = pin!(all_closed);
    tokio::select! {
        () = &mut all_closed => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "shutdown deadline reached; closing remaining connections");
            let _ = phase_tx.send(Phase::Close);
            all_closed.await;
        }
    }
}

struct CloseOnDrop(watch::Sender<Phase>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if *self.0.borrow() != Phase::Close {
            let _ = self.0.send(Phase::Close);
        }
    }
}

struct WorkerContext {
    slot: usize,
    app: Router,
    phase: watch::Receiver<Phase>,
    open: Arc<AtomicUsize>,
}

impl WorkerContext {
    fn run(
        self,
        mut conns: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
        drained: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    ) {
        providers::client::set_pool_slot(self.slot);
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "could not start a serving thread's runtime");
                return;
            }
        };
        runtime.block_on(async move {
            // The timer driver wakes itself (a write to its eventfd) whenever a timer is armed
            // earlier than the earliest one it knew of when it last went to sleep. A request
            // arms several (first byte, keep-alive, deadlines), usually with nothing earlier
            // pending: this beat keeps a deadline at most a second away, so arming a
            // request's timers never costs that write.
            let beat = tokio::spawn(async {
                let mut beat = tokio::time::interval(std::time::Duration::from_secs(1));
                beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    beat.tick().await;
                }
            });
            let (held_tx, held_rx) = watch::channel(());
            while let Some((std, remote)) = conns.recv().await {
                let counted = Counted(Arc::clone(&self.open));
                let stream = match TcpStream::from_std(std) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "could not take over a connection");
                        continue;
                    }
                };
                let conn = serve_connection(
                    stream,
                    remote,
                    self.app.clone(),
                    self.phase.clone(),
                    held_rx.clone(),
                );
                tokio::spawn(async move {
                    let _counted = counted;
                    conn.await;
                });
            }
            drop(held_rx);
            held_tx.closed().await;
            beat.abort();
            let _ = drained.send(());
            let _ = release.await;
        });
    }
}

/// One connection a serving thread has; uncounted when dropped (also if serving it panicked).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection until it closes, or until the phase says to drain or close it.
/// `_held` is dropped when the connection is done.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    mut phase: watch::Receiver<Phase>,
    _held: watch::Receiver<()>,
) {
    let service = hyper_util::service::TowerToHyperService::new(app.map_request(
        move |req: http::Request<Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(remote));
            req
        },
    ));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http2().enable_connect_protocol();
    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
    if *phase.borrow_and_update() != Phase::Serve {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = phase.changed() => {
                let now = changed.map_or(Phase::Close, |()| *phase.borrow_and_update());
                match now {
                    Phase::Serve => {}
                    Phase::Drain => conn.as_mut().graceful_shutdown(),
                    Phase::Close => return,
                }
            }
        }
    }
}

/// Errors that concern one connection only (the peer reset it before it was accepted).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
