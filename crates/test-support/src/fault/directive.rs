//! Per-request fault overrides for deterministic tests: the `x-mock-fault` header, or the same
//! text in a `[mock-fault: …]` marker anywhere in the request body (a gateway in front of the
//! mock forwards message text but not unknown headers).
//!
//! The directives are documented in the crate docs (`lib.rs`), the one place users read.

use std::time::Duration;

use axum::http::HeaderMap;

use super::{CutAt, DEFAULT_RETRY_AFTER, FaultError, Plan, PlannedFault};

/// Request header carrying directives.
pub const HEADER: &str = "x-mock-fault";
const MARKER: &[u8] = b"[mock-fault:";

/// The directives a request carries, header first, else the body marker.
fn directive_text(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(HEADER)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if !values.is_empty() {
        return Some(values.join(","));
    }
    let start = body.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let len = body[start..].iter().position(|&b| b == b']')?;
    Some(String::from_utf8_lossy(&body[start..start + len]).into_owned())
}

/// The plan a request asks for, if it carries directives.
///
/// # Errors
/// A message naming the bad directive.
pub(crate) fn requested(headers: &HeaderMap, body: &[u8]) -> Result<Option<Plan>, FaultError> {
    directive_text(headers, body)
        .map(|text| parse(&text))
        .transpose()
}

fn number<T: std::str::FromStr>(item: &str, value: &str) -> Result<T, FaultError> {
    value
        .parse()
        .map_err(|_| FaultError::Parse(format!("{HEADER} `{item}`: `{value}` is not a number")))
}

fn set_action(plan: &mut Plan, fault: PlannedFault, item: &str) -> Result<(), FaultError> {
    if plan.action.is_some() {
        return Err(FaultError::Parse(format!(
            "{HEADER} `{item}`: only one of status, reset and cut per request"
        )));
    }
    plan.action = Some(fault);
    Ok(())
}

/// Parses directives (see the module docs).
///
/// # Errors
/// A message naming the bad directive.
pub(crate) fn parse(text: &str) -> Result<Plan, FaultError> {
    let mut plan = Plan::default();
    // None: not given; Some(None): `retry_after=none`.
    let mut retry_after: Option<Option<Duration>> = None;
    for item in text
        .split([',', ';'])
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (item, None),
        };
        match (key, value) {
            ("none", None) => {}
            ("status", Some(value)) => {
                let status: u16 = number(item, value)?;
                super::check_status(status)?;
                set_action(
                    &mut plan,
                    PlannedFault::Status {
                        status,
                        retry_after: None,
                    },
                    item,
                )?;
            }
            ("reset", None) => set_action(&mut plan, PlannedFault::Reset, item)?,
            ("cut", None) => set_action(&mut plan, PlannedFault::Cut(CutAt::Half), item)?,
            ("cut", Some(value)) => {
                let events = number(item, value)?;
                set_action(
                    &mut plan,
                    PlannedFault::Cut(CutAt::EventsBeforeDone(events)),
                    item,
                )?;
            }
            ("retry_after", Some("none")) => retry_after = Some(None),
            ("retry_after", Some(value)) => {
                let secs: f64 = number(item, value)?;
                let after = Duration::try_from_secs_f64(secs)
                    .map_err(|_| FaultError::Parse(format!("{HEADER} `{item}`: not a duration")))?;
                retry_after = Some(Some(after));
            }
            ("retry_after_ms", Some(value)) => {
                retry_after = Some(Some(Duration::from_millis(number(item, value)?)));
            }
            ("latency_ms", Some(value)) => {
                plan.latency = Duration::from_millis(number(item, value)?);
            }
            ("drip_ms", Some(value)) => {
                plan.drip = Some(Duration::from_millis(number(item, value)?));
            }
            _ => {
                return Err(FaultError::Parse(format!(
                    "{HEADER}: unknown directive `{item}` (expected status=CODE, reset, cut[=N], \
                     retry_after=SECS|none, retry_after_ms=MS, latency_ms=MS, drip_ms=MS or none)"
                )));
            }
        }
    }
    match (&mut plan.action, retry_after) {
        (
            Some(PlannedFault::Status {
                status,
                retry_after,
            }),
            given,
        ) => {
            *retry_after = match given {
                Some(given) => given,
                None if *status == 429 => Some(DEFAULT_RETRY_AFTER),
                None => None,
            };
        }
        (_, Some(_)) => {
            return Err(FaultError::Parse(format!(
                "{HEADER}: retry_after needs a status=CODE directive"
            )));
        }
        (_, None) => {}
    }
    Ok(plan)
}
