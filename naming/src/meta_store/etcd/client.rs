//! A small client of etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/txn`,
//! `/v3/watch`, `/v3/lease/*`, `/v3/auth/authenticate`) over ureq, so no
//! gRPC stack or async runtime comes in. Keys and values travel as base64;
//! 64-bit numbers as decimal strings. Every call is bounded by
//! `ETCD_CALL_TIMEOUT`; a member that cannot be reached, or that answers
//! it has no leader, is left for the next endpoint, in order, and the one
//! that answered is tried first next time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ureq::Agent;

use common::tls::ClientTls;

use crate::s3::encoding::{base64, unbase64};

/// Every call to etcd, a watch's catch-up included, ends within this.
pub const ETCD_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long calls keep going round the endpoints while none answers: an
/// election (of about a second, by etcd's defaults) costs no request.
pub const ELECTION_WAIT: Duration = Duration::from_secs(2);

/// Between two rounds of the endpoints.
const ROUND_PAUSE: Duration = Duration::from_millis(100);

/// A range read returns at most this many keys a page (etcd's request and
/// answer limits are about 1.5 MiB; a file's record is well under 1 KiB).
pub const RANGE_PAGE_KEYS: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// No endpoint answered, or none has a quorum behind it.
    Unavailable(String),
    /// The history asked for was compacted away: read the state again.
    Compacted { compact_revision: i64 },
    /// An answer that is not what etcd sends, or a refusal that retrying
    /// will not change (bad credentials, a request too large).
    Refused(String),
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::Unavailable(detail) => write!(f, "etcd is unavailable: {detail}"),
            EtcdError::Compacted { compact_revision } => {
                write!(f, "etcd compacted its history up to {compact_revision}")
            }
            EtcdError::Refused(detail) => write!(f, "etcd refused: {detail}"),
        }
    }
}

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// A change one watch answer reports: `value` is `None` for a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub mod_revision: i64,
}

pub enum Compare {
    /// The key was last changed at `revision` (0: it does not exist).
    ModRevision { key: Vec<u8>, revision: i64 },
    /// The key holds exactly `value`.
    Value { key: Vec<u8>, value: Vec<u8> },
}

pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: Option<i64>,
    },
    /// Deletes the keys in `[key, range_end)`, or `key` alone.
    Delete {
        key: Vec<u8>,
        range_end: Option<Vec<u8>>,
    },
    Get {
        key: Vec<u8>,
    },
}

/// What a transaction did: whether its compares held, the store's revision
/// after it, and for each `Op::Get` of the branch taken, the keys read.
pub struct TxnOutcome {
    pub succeeded: bool,
    pub revision: i64,
    pub reads: Vec<Vec<Kv>>,
}

pub struct EtcdClient {
    agent: Agent,
    endpoints: Vec<String>,
    /// The endpoint that answered last: tried first.
    preferred: AtomicUsize,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
}

impl EtcdClient {
    pub fn new(
        endpoints: Vec<String>,
        credentials: Option<(String, String)>,
        tls: &ClientTls,
    ) -> EtcdClient {
        assert!(!endpoints.is_empty(), "etcd needs an endpoint");
        let config = tls
            .configure(Agent::config_builder())
            .http_status_as_error(false)
            .timeout_connect(Some(ETCD_CALL_TIMEOUT))
            .timeout_global(Some(ETCD_CALL_TIMEOUT))
            .build();
        EtcdClient {
            agent: common::transport::agent(config),
            endpoints,
            preferred: AtomicUsize::new(0),
            credentials,
            token: Mutex::new(None),
        }
    }

    /// Keys in `[key, range_end)` (or `key` alone) as of `revision` (0: the
    /// latest), at most `limit` (0: all); whether more are left; the
    /// store's revision the read was made at.
    pub fn range(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
        revision: i64,
        limit: u64,
    ) -> Result<(Vec<Kv>, bool, i64), EtcdError> {
        let mut body = json!({ "key": base64(key) });
        if let Some(end) = range_end {
            body["range_end"] = json!(base64(end));
        }
        if revision > 0 {
            body["revision"] = json!(revision.to_string());
        }
        if limit > 0 {
            body["limit"] = json!(limit.to_string());
        }
        let answer = self.call("/v3/kv/range", &body)?;
        let kvs = kvs_of(&answer)?;
        let more = answer.get("more").and_then(Value::as_bool).unwrap_or(false);
        Ok((kvs, more, header_revision(&answer)?))
    }

    pub fn txn(
        &self,
        compares: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<TxnOutcome, EtcdError> {
        let compare: Vec<Value> = compares
            .iter()
            .map(|compare| match compare {
                Compare::ModRevision { key, revision } => json!({
                    "key": base64(key), "target": "MOD", "result": "EQUAL",
                    "mod_revision": revision.to_string(),
                }),
                Compare::Value { key, value } => json!({
                    "key": base64(key), "target": "VALUE", "result": "EQUAL",
                    "value": base64(value),
                }),
            })
            .collect();
        let body = json!({
            "compare": compare,
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        let answer = self.call("/v3/kv/txn", &body)?;
        let succeeded = answer
            .get("succeeded")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut reads = Vec::new();
        for response in answer
            .get("responses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(range) = response.get("response_range") {
                reads.push(kvs_of(range)?);
            }
        }
        Ok(TxnOutcome {
            succeeded,
            revision: header_revision(&answer)?,
            reads,
        })
    }

    /// Reads the changes to `[key, range_end)` from `start_revision` on, in
    /// order, handing each to `take` until it answers `true` (caught up).
    /// The watch is closed then; one that has not caught up within the call
    /// timeout is an error.
    pub fn watch_from(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
        mut take: impl FnMut(Event) -> Result<bool, EtcdError>,
    ) -> Result<(), EtcdError> {
        let body = json!({ "create_request": {
            "key": base64(key),
            "range_end": base64(range_end),
            "start_revision": start_revision.to_string(),
        }});
        let response = self.send("/v3/watch", &body)?;
        let reader = response.into_body().into_reader();
        let answers = serde_json::Deserializer::from_reader(reader).into_iter::<Value>();
        for answer in answers {
            let answer = answer.map_err(|err| EtcdError::Unavailable(format!("watch: {err}")))?;
            let result = answer
                .get("result")
                .ok_or_else(|| refused("a watch answer without a result", &answer))?;
            if let Some(compacted) = result.get("compact_revision") {
                return Err(EtcdError::Compacted {
                    compact_revision: number(compacted)?,
                });
            }
            if result.get("canceled").and_then(Value::as_bool) == Some(true) {
                return Err(refused("the watch was canceled", result));
            }
            for event in result
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kv = event
                    .get("kv")
                    .ok_or_else(|| refused("an event without a kv", event))?;
                let deleted = event.get("type").and_then(Value::as_str) == Some("DELETE");
                let parsed = kv_of(kv)?;
                let event = Event {
                    key: parsed.key,
                    value: (!deleted).then_some(parsed.value),
                    mod_revision: parsed.mod_revision,
                };
                if take(event)? {
                    return Ok(());
                }
            }
        }
        Err(EtcdError::Unavailable(
            "the watch ended before it caught up".to_owned(),
        ))
    }

    /// Drops the history before `revision` (the keys as they are stay).
    pub fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        self.call(
            "/v3/kv/compaction",
            &json!({ "revision": revision.to_string() }),
        )
        .map(drop)
    }

    /// A lease of `ttl_secs`; its id.
    pub fn lease_grant(&self, ttl_secs: u64) -> Result<i64, EtcdError> {
        let answer = self.call("/v3/lease/grant", &json!({ "TTL": ttl_secs.to_string() }))?;
        number(answer.get("ID").unwrap_or(&Value::Null))
    }

    /// Renews lease `id`; the seconds it has left (0: it expired).
    pub fn lease_keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let answer = self.call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))?;
        let result = answer.get("result").unwrap_or(&answer);
        Ok(result.get("TTL").map(number).transpose()?.unwrap_or(0))
    }

    pub fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({ "ID": id.to_string() }))
            .map(drop)
    }

    fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let response = self.send(path, body)?;
        let text = response
            .into_body()
            .with_config()
            .limit(ANSWER_BYTES_MAX)
            .read_to_string()
            .map_err(|err| EtcdError::Unavailable(format!("{path}: {err}")))?;
        serde_json::from_str(&text).map_err(|err| EtcdError::Refused(format!("{path}: {err}")))
    }

    /// Sends `body` to the preferred endpoint, then to each other in turn
    /// while they cannot answer; rounds again for `ELECTION_WAIT` (etcd
    /// elects a new leader within about a second of losing one).
    fn send(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<ureq::http::Response<ureq::Body>, EtcdError> {
        let deadline = Instant::now() + ELECTION_WAIT;
        loop {
            let first = self.preferred.load(Ordering::Relaxed);
            let mut failures = Vec::new();
            for step in 0..self.endpoints.len() {
                let index = (first + step) % self.endpoints.len();
                let endpoint = &self.endpoints[index];
                match self.send_to(endpoint, path, body) {
                    Ok(response) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return Ok(response);
                    }
                    Err(EtcdError::Unavailable(detail)) => {
                        failures.push(format!("{endpoint}: {detail}"))
                    }
                    Err(other) => return Err(other),
                }
            }
            if Instant::now() >= deadline {
                return Err(EtcdError::Unavailable(failures.join("; ")));
            }
            // A pause between rounds, not a spin (a timer channel: no sleeps).
            let _ = crossbeam_channel::after(ROUND_PAUSE).recv();
        }
    }

    fn send_to(
        &self,
        endpoint: &str,
        path: &str,
        body: &Value,
    ) -> Result<ureq::http::Response<ureq::Body>, EtcdError> {
        for attempt in 0..2 {
            let token = match &self.credentials {
                Some(_) => Some(self.token(endpoint, attempt > 0)?),
                None => None,
            };
            let mut request = self.agent.post(format!("{endpoint}{path}"));
            if let Some(token) = &token {
                request = request.header("Authorization", token);
            }
            let response = request
                .header("Content-Type", "application/json")
                .send(body.to_string())
                .map_err(|err| EtcdError::Unavailable(err.to_string()))?;
            let status = response.status().as_u16();
            if status == 200 {
                return Ok(response);
            }
            let detail = response
                .into_body()
                .with_config()
                .limit(ANSWER_BYTES_MAX)
                .read_to_string()
                .unwrap_or_default();
            // An expired token is answered 401: fetch a new one, once.
            if status == 401 && self.credentials.is_some() && attempt == 0 {
                continue;
            }
            return Err(match status {
                // No leader, no quorum, a member still starting: another
                // member may do better.
                500..=599 => EtcdError::Unavailable(format!("{status}: {detail}")),
                _ => EtcdError::Refused(format!("{path} answered {status}: {detail}")),
            });
        }
        Err(EtcdError::Refused(format!(
            "{path}: the credentials are not accepted"
        )))
    }

    /// The auth token (fetched with the credentials, again if `renew`).
    fn token(&self, endpoint: &str, renew: bool) -> Result<String, EtcdError> {
        let mut token = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(known), false) = (&*token, renew) {
            return Ok(known.clone());
        }
        let Some((name, password)) = &self.credentials else {
            return Err(EtcdError::Refused("no credentials".to_owned()));
        };
        let response = self
            .agent
            .post(format!("{endpoint}/v3/auth/authenticate"))
            .header("Content-Type", "application/json")
            .send(json!({ "name": name, "password": password }).to_string())
            .map_err(|err| EtcdError::Unavailable(err.to_string()))?;
        if response.status().as_u16() != 200 {
            return Err(EtcdError::Refused(format!(
                "etcd refused the user {name:?}: {}",
                response.status()
            )));
        }
        let text = response
            .into_body()
            .with_config()
            .limit(ANSWER_BYTES_MAX)
            .read_to_string()
            .map_err(|err| EtcdError::Unavailable(err.to_string()))?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|err| EtcdError::Refused(format!("authenticate: {err}")))?;
        let fresh = answer
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| refused("an authentication without a token", &answer))?
            .to_owned();
        *token = Some(fresh.clone());
        Ok(fresh)
    }
}

/// The largest answer read whole: a range page of `RANGE_PAGE_KEYS` keys.
const ANSWER_BYTES_MAX: u64 = 64 * 1024 * 1024;

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => {
            let mut put = json!({ "key": base64(key), "value": base64(value) });
            if let Some(lease) = lease {
                put["lease"] = json!(lease.to_string());
            }
            json!({ "request_put": put })
        }
        Op::Delete { key, range_end } => {
            let mut delete = json!({ "key": base64(key) });
            if let Some(end) = range_end {
                delete["range_end"] = json!(base64(end));
            }
            json!({ "request_delete_range": delete })
        }
        Op::Get { key } => json!({ "request_range": { "key": base64(key) } }),
    }
}

fn refused(what: &str, answer: &Value) -> EtcdError {
    let mut shown = answer.to_string();
    shown.truncate(200);
    EtcdError::Refused(format!("{what}: {shown}"))
}

/// A 64-bit number, which the gateway writes as a string.
fn number(value: &Value) -> Result<i64, EtcdError> {
    match value {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_i64(),
        _ => None,
    }
    .ok_or_else(|| refused("not a number", value))
}

fn header_revision(answer: &Value) -> Result<i64, EtcdError> {
    let revision = answer
        .get("header")
        .and_then(|header| header.get("revision"))
        .ok_or_else(|| refused("an answer without a revision", answer))?;
    number(revision)
}

fn kvs_of(answer: &Value) -> Result<Vec<Kv>, EtcdError> {
    answer
        .get("kvs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(kv_of)
        .collect()
}

fn kv_of(kv: &Value) -> Result<Kv, EtcdError> {
    let bytes = |field: &str| -> Result<Vec<u8>, EtcdError> {
        match kv.get(field).and_then(Value::as_str) {
            None => Ok(Vec::new()),
            Some(text) => unbase64(text).ok_or_else(|| refused("not base64", kv)),
        }
    };
    Ok(Kv {
        key: bytes("key")?,
        value: bytes("value")?,
        mod_revision: kv.get("mod_revision").map(number).transpose()?.unwrap_or(0),
    })
}

/// The first key past every key that starts with `prefix`: the end of a
/// prefix range.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // A prefix of only 0xff bytes: the range runs to the end ("\0").
    vec![0]
}
