//! Background work of [`super::Access`]: the key-set refresh (revocations reach this instance
//! within `keys.refresh_ms` plus one query), the Redis probe (down → up within half a second,
//! then budgets are re-seeded) and the sweeper that evicts idle in-process state.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Access;
use crate::usage::now_ms;

pub struct AccessTasks {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl AccessTasks {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

pub fn spawn(access: Arc<Access>) -> AccessTasks {
    let (stop, rx) = watch::channel(false);
    let mut handles = vec![
        tokio::spawn(refresh_keys(Arc::clone(&access), rx.clone())),
        tokio::spawn(sweep(Arc::clone(&access), rx.clone())),
    ];
    if access.redis.is_some() {
        handles.push(tokio::spawn(probe_redis(access, rx)));
    }
    AccessTasks { stop, handles }
}

/// Sleep for `d`, or return true when told to stop.
async fn stopped(rx: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => *rx.borrow(),
        _ = rx.changed() => true,
    }
}

async fn refresh_keys(access: Arc<Access>, mut rx: watch::Receiver<bool>) {
    let mut failing = false;
    while !stopped(&mut rx, access.cfg.keys_refresh).await {
        match access.keys.refresh(&access.store).await {
            Ok(Some(reset)) => {
                failing = false;
                access
                    .metrics
                    .access
                    .keys_loaded
                    .set(i64::try_from(access.keys.len()).unwrap_or(0));
                for id in reset {
                    access.reset_local_budget(id);
                }
            }
            Ok(None) => failing = false,
            Err(e) => {
                access.metrics.access.key_refresh_errors.inc();
                if !failing {
                    tracing::error!(error = %e, "could not refresh API keys; the last known set stays in force");
                }
                failing = true;
            }
        }
    }
}

async fn sweep(access: Arc<Access>, mut rx: watch::Receiver<bool>) {
    while !stopped(&mut rx, access.cfg.limits.sweep_interval).await {
        let left = access.local.sweep(now_ms());
        access
            .metrics
            .access
            .limiter_entries
            .set(i64::try_from(left).unwrap_or(i64::MAX));
    }
}

async fn probe_redis(access: Arc<Access>, mut rx: watch::Receiver<bool>) {
    let Some(redis) = &access.redis else {
        return;
    };
    loop {
        let every = if redis.is_up() {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(500)
        };
        if stopped(&mut rx, every).await {
            return;
        }
        match redis.ping().await {
            Ok(()) => {
                if redis.set_up(true) {
                    access.metrics.access.redis_up.set(1);
                    tracing::warn!("redis backend is back: limits and budgets are shared again");
                    access.seed_budgets().await;
                }
            }
            Err(e) => access.redis_failed("ping", &e),
        }
    }
}

impl Access {
    /// A key's budgets were reset elsewhere: start this instance's in-process state over too.
    pub fn reset_local_budget(&self, key_id: i64) {
        let keys = Access::budget_keys(Some(key_id), now_ms());
        for k in [keys.key_daily, keys.key_monthly].into_iter().flatten() {
            self.local.reset_budget(&k);
        }
    }
}
