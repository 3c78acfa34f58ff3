//! Resilience: retries with backoff and a retry budget, circuit breakers per deployment,
//! load balancing across deployments of one alias, and the health view `/ready` and the admin
//! API show. The request loop that uses them lives in `chat::pipeline`.

pub mod breaker;
pub mod deployment;
pub mod retry;

pub use breaker::{CircuitBreaker, CircuitState};
pub use deployment::{Deployment, DeploymentHealth, ModelGroup};
pub use retry::RetryBudget;
