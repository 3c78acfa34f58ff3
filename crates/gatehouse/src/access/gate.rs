//! The cap on in-flight upstream calls of this instance, with three priority lanes. A permit is
//! taken at once while calls are under the cap and nobody of equal or higher priority waits;
//! otherwise the caller queues in its lane. A released permit goes straight to the oldest
//! waiter of the highest non-empty lane (high, then normal, then batch). A wait longer than the
//! deadline, or a full queue, is refused (503 with `Retry-After`).
//!
//! A waiter that goes away (client disconnect) leaves the queue in its `Drop`; if a permit was
//! handed to it in the meantime, the permit is passed on, so none is ever lost.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::oneshot;

use super::Priority;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateError {
    /// Waited the whole deadline.
    Timeout,
    /// The queue is at its bound.
    QueueFull,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<()>,
}

struct State {
    in_flight: usize,
    lanes: [VecDeque<Waiter>; 3],
    next_id: u64,
}

pub struct Gate {
    state: Mutex<State>,
    capacity: usize,
    max_queued: usize,
    in_flight_gauge: Gauge,
    lane_gauges: [Gauge; 3],
}

/// One in-flight slot; released on drop.
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release();
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permit")
    }
}

/// Removes a waiter from its lane if it gives up; passes on a permit it got meanwhile.
struct Queued {
    gate: Arc<Gate>,
    lane: usize,
    id: u64,
    rx: Option<oneshot::Receiver<()>>,
    granted: bool,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let mut st = self.gate.lock();
        let lane = &mut st.lanes[self.lane];
        if let Some(pos) = lane.iter().position(|w| w.id == self.id) {
            lane.remove(pos);
            self.gate.lane_gauges[self.lane].dec();
            return;
        }
        // Already popped: a permit was sent to us under the lock we now hold.
        if let Some(mut rx) = self.rx.take()
            && rx.try_recv().is_ok()
        {
            self.gate.hand_over(&mut st);
        }
    }
}

impl Gate {
    pub fn new(capacity: usize, max_queued: usize, in_flight: Gauge, lanes: [Gauge; 3]) -> Gate {
        Gate {
            state: Mutex::new(State {
                in_flight: 0,
                lanes: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
                next_id: 0,
            }),
            capacity,
            max_queued,
            in_flight_gauge: in_flight,
            lane_gauges: lanes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// (in flight, queued per lane high/normal/batch).
    pub fn snapshot(&self) -> (usize, [usize; 3]) {
        let st = self.lock();
        (
            st.in_flight,
            [st.lanes[0].len(), st.lanes[1].len(), st.lanes[2].len()],
        )
    }

    /// Wait for a slot in `lane` for at most `deadline`.
    pub async fn acquire(
        self: &Arc<Self>,
        lane: Priority,
        deadline: Duration,
    ) -> Result<Permit, GateError> {
        let li = lane.index();
        let mut queued = {
            let mut st = self.lock();
            let ahead = st.lanes[..=li].iter().any(|l| !l.is_empty());
            if st.in_flight < self.capacity && !ahead {
                st.in_flight += 1;
                self.in_flight_gauge.inc();
                return Ok(Permit {
                    gate: Arc::clone(self),
                });
            }
            let queued: usize = st.lanes.iter().map(VecDeque::len).sum();
            if queued >= self.max_queued || deadline.is_zero() {
                return Err(if deadline.is_zero() {
                    GateError::Timeout
                } else {
                    GateError::QueueFull
                });
            }
            let (tx, rx) = oneshot::channel();
            let id = st.next_id;
            st.next_id += 1;
            st.lanes[li].push_back(Waiter { id, tx });
            self.lane_gauges[li].inc();
            Queued {
                gate: Arc::clone(self),
                lane: li,
                id,
                rx: Some(rx),
                granted: false,
            }
        };
        let Some(rx) = queued.rx.as_mut() else {
            return Err(GateError::Timeout);
        };
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(())) => {
                queued.granted = true;
                Ok(Permit {
                    gate: Arc::clone(self),
                })
            }
            // Timed out (or the sender vanished): `Queued::drop` cleans up.
            _ => Err(GateError::Timeout),
        }
    }

    fn release(&self) {
        let mut st = self.lock();
        self.hand_over(&mut st);
    }

    /// Give the slot held by the caller to the next waiter, or free it.
    fn hand_over(&self, st: &mut State) {
        for li in 0..3 {
            while let Some(w) = st.lanes[li].pop_front() {
                self.lane_gauges[li].dec();
                if w.tx.send(()).is_ok() {
                    return;
                }
            }
        }
        st.in_flight = st.in_flight.saturating_sub(1);
        self.in_flight_gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(cap: usize, max_queued: usize) -> Arc<Gate> {
        Arc::new(Gate::new(
            cap,
            max_queued,
            Gauge::default(),
            [Gauge::default(), Gauge::default(), Gauge::default()],
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn lanes_are_served_by_priority_and_deadlines_hold() {
        let g = gate(1, 10);
        let held = g.acquire(Priority::Normal, Duration::ZERO).await;
        assert!(held.is_ok());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, lane) in [
            ("batch", Priority::Batch),
            ("normal", Priority::Normal),
            ("high", Priority::High),
        ] {
            let (g, order) = (Arc::clone(&g), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let p = g.acquire(lane, Duration::from_secs(30)).await;
                order
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(name);
                drop(p);
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(g.snapshot(), (1, [1, 1, 1]));
        drop(held);
        for t in tasks {
            let _ = t.await;
        }
        assert_eq!(
            *order.lock().unwrap_or_else(PoisonError::into_inner),
            vec!["high", "normal", "batch"]
        );
        assert_eq!(g.snapshot(), (0, [0, 0, 0]));
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_full_queues_and_abandoned_waiters_lose_no_permit() {
        let g = gate(1, 1);
        let held = g.acquire(Priority::High, Duration::ZERO).await;
        assert!(held.is_ok());
        // Bad input: no wait allowed while full.
        assert_eq!(
            g.acquire(Priority::High, Duration::ZERO).await.unwrap_err(),
            GateError::Timeout
        );
        let waiter = {
            let g = Arc::clone(&g);
            tokio::spawn(async move {
                g.acquire(Priority::Normal, Duration::from_secs(5))
                    .await
                    .map(drop)
            })
        };
        tokio::task::yield_now().await;
        // The queue (bound 1) is full now.
        assert_eq!(
            g.acquire(Priority::Batch, Duration::from_secs(5))
                .await
                .unwrap_err(),
            GateError::QueueFull
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(waiter.await.ok(), Some(Err(GateError::Timeout)));
        assert_eq!(g.snapshot(), (1, [0, 0, 0]));
        // A waiter aborted (client gone) frees its place; the permit then frees the gate.
        let aborted = {
            let g = Arc::clone(&g);
            tokio::spawn(async move {
                g.acquire(Priority::Normal, Duration::from_secs(5))
                    .await
                    .map(drop)
            })
        };
        tokio::task::yield_now().await;
        aborted.abort();
        let _ = aborted.await;
        drop(held);
        assert_eq!(g.snapshot(), (0, [0, 0, 0]));
        assert!(g.acquire(Priority::Batch, Duration::ZERO).await.is_ok());
    }
}
