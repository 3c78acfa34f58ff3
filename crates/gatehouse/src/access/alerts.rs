//! Budget alerts: a warning log line and, when configured, a JSON POST to a webhook, sent from
//! a spawned task with a timeout so neither a slow receiver nor a failure touches the request.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BudgetAlert {
    pub event: &'static str,
    /// `key_daily`, `key_monthly` or `global_daily`.
    pub scope: &'static str,
    pub key_id: Option<i64>,
    pub key_name: Option<String>,
    /// `20261122` or `202611`.
    pub period: String,
    pub percent: u8,
    pub limit_micros: i64,
    pub spent_micros: i64,
}

pub struct Alerter {
    client: reqwest::Client,
    url: Option<Arc<str>>,
    timeout: Duration,
    failures: Counter,
}

impl Alerter {
    pub fn new(url: Option<String>, timeout: Duration, failures: Counter) -> Alerter {
        Alerter {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            url: url.map(Arc::from),
            timeout,
            failures,
        }
    }

    pub fn fire(&self, alert: BudgetAlert) {
        tracing::warn!(
            scope = alert.scope,
            key_id = alert.key_id,
            key_name = alert.key_name.as_deref(),
            period = %alert.period,
            percent = alert.percent,
            limit_micros = alert.limit_micros,
            spent_micros = alert.spent_micros,
            "budget alert: {}% of the {} budget used",
            alert.percent,
            alert.scope
        );
        let Some(url) = self.url.clone() else {
            return;
        };
        let (client, timeout, failures) =
            (self.client.clone(), self.timeout, self.failures.clone());
        // Spawned: the request that crossed the threshold never waits for the receiver.
        tokio::spawn(async move {
            let sent = tokio::time::timeout(timeout, client.post(&*url).json(&alert).send()).await;
            let ok = matches!(&sent, Ok(Ok(r)) if r.status().is_success());
            if !ok {
                failures.inc();
                let why = match sent {
                    Ok(Ok(r)) => format!("status {}", r.status()),
                    Ok(Err(e)) => e.without_url().to_string(),
                    Err(_) => format!("no answer within {timeout:?}"),
                };
                tracing::error!(error = %why, "budget alert webhook failed");
            }
        });
    }
}
