//! Logs, one door for every line a server writes: through the `log` facade
//! (so tiny_http's own warnings come out the same way), at `LOG_LEVEL`
//! (`error|warn|info|debug`, default `info`), as text or JSON lines
//! (`LOG_FORMAT`), on stdout (a fatal start-up error alone goes to stderr,
//! see `config::server_main`). Each line is formatted whole and written
//! with one call, so lines of different threads never interleave.
//!
//! Text: `2026-12-02T08:01:02.345Z INFO  naming: storage server ... is dead`.
//! JSON: `{"ts":"2026-12-02T08:01:02.345Z","level":"info","target":"naming","msg":"..."}`;
//! a request line (target `request`) carries its fields as keys instead of
//! `msg`: `method`, `path` (with the query), `status`, `duration_ms`,
//! `bytes_in`, `bytes_out`, `token` (the label).

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::time::timestamp;

pub use ::log::{Level, LevelFilter};

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// `LOG_LEVEL` and `LOG_FORMAT`, as a server's settings give them.
#[derive(Clone, Copy, Debug)]
pub struct LogSettings {
    pub level: LevelFilter,
    pub format: Format,
}

impl Default for LogSettings {
    fn default() -> LogSettings {
        LogSettings {
            level: LevelFilter::Info,
            format: Format::Text,
        }
    }
}

/// Parses `LOG_LEVEL`.
pub fn parse_level(raw: &str) -> Result<LevelFilter, String> {
    match raw {
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        _ => Err("must be error, warn, info or debug".to_owned()),
    }
}

/// Parses `LOG_FORMAT`.
pub fn parse_format(raw: &str) -> Result<Format, String> {
    match raw {
        "text" => Ok(Format::Text),
        "json" => Ok(Format::Json),
        _ => Err("must be text or json".to_owned()),
    }
}

struct Logger {
    json: AtomicBool,
}

static LOGGER: Logger = Logger {
    json: AtomicBool::new(false),
};

/// Sends every line of the process through Harbour's logger from now on.
/// Called once, first thing in a server's `run`; a second call only
/// changes the level and format.
pub fn init(settings: LogSettings) {
    LOGGER
        .json
        .store(settings.format == Format::Json, Ordering::Relaxed);
    // Err only when a logger is already set: ours, from an earlier call.
    let _ = ::log::set_logger(&LOGGER);
    ::log::set_max_level(settings.level);
}

impl ::log::Log for Logger {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.level() <= ::log::max_level()
    }

    fn log(&self, record: &::log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.write(record);
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

impl Logger {
    fn write(&self, record: &::log::Record<'_>) {
        // `naming::upload` → `naming`, `harbour_storage` → `storage`: the
        // part of the process a line is from.
        let target = record.target().split("::").next().unwrap_or_default();
        let target = target.trim_start_matches("harbour_");
        let message = record.args().to_string();
        let line = if self.json.load(Ordering::Relaxed) {
            let mut line = json_head(record.level(), target);
            line.push_str(",\"msg\":");
            push_json_string(&mut line, &message);
            line.push('}');
            line
        } else {
            format!(
                "{} {:<5} {target}: {message}",
                timestamp(SystemTime::now()),
                record.level()
            )
        };
        write_line(line);
    }
}

/// Writes `message` as an `info` line at every level: only for the line
/// saying where a server listens, which the test harness (and a person
/// starting a server by hand) must see whatever `LOG_LEVEL` says.
pub fn announce(message: &str) {
    LOGGER.write(
        &::log::Record::builder()
            .level(Level::Info)
            .target(module_path!())
            .args(format_args!("{message}"))
            .build(),
    );
}

/// One answered request, logged at `debug` (`request`).
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// The path and query as received.
    pub target: &'a str,
    pub status: u16,
    pub duration: Duration,
    /// The body's announced length, when it had one.
    pub bytes_in: Option<u64>,
    /// The answer's body length, when known before sending.
    pub bytes_out: Option<u64>,
    /// Who made it: the API token's label, when there is one.
    pub principal: Option<&'a str>,
}

/// Whether request lines are written: checked before building one, so at
/// `info` a request costs one atomic load here.
pub fn requests_enabled() -> bool {
    ::log::max_level() >= LevelFilter::Debug
}

/// Logs `line` at `debug`, its fields as JSON keys in the JSON format.
pub fn request(line: &RequestLine<'_>) {
    if !requests_enabled() {
        return;
    }
    let duration_ms = line.duration.as_secs_f64() * 1e3;
    let text = if LOGGER.json.load(Ordering::Relaxed) {
        let mut text = json_head(Level::Debug, "request");
        text.push_str(",\"method\":");
        push_json_string(&mut text, line.method);
        text.push_str(",\"path\":");
        push_json_string(&mut text, line.target);
        let _ = write!(
            text,
            ",\"status\":{},\"duration_ms\":{duration_ms:.3}",
            line.status
        );
        if let Some(bytes) = line.bytes_in {
            let _ = write!(text, ",\"bytes_in\":{bytes}");
        }
        if let Some(bytes) = line.bytes_out {
            let _ = write!(text, ",\"bytes_out\":{bytes}");
        }
        if let Some(principal) = line.principal {
            text.push_str(",\"token\":");
            push_json_string(&mut text, principal);
        }
        text.push('}');
        text
    } else {
        let mut text = format!(
            "{} DEBUG request: {} {} {} {duration_ms:.2} ms",
            timestamp(SystemTime::now()),
            line.method,
            line.target,
            line.status
        );
        if let Some(bytes) = line.bytes_in {
            let _ = write!(text, " in={bytes}");
        }
        if let Some(bytes) = line.bytes_out {
            let _ = write!(text, " out={bytes}");
        }
        if let Some(principal) = line.principal {
            let _ = write!(text, " token={principal:?}");
        }
        text
    };
    write_line(text);
}

fn json_head(level: Level, target: &str) -> String {
    let mut head = format!("{{\"ts\":\"{}\",\"level\":\"", timestamp(SystemTime::now()));
    head.push_str(&level.as_str().to_ascii_lowercase());
    head.push_str("\",\"target\":");
    push_json_string(&mut head, target);
    head
}

/// Writes `line` and its newline in one call; a closed stdout is ignored
/// (a server keeps serving if its log reader went away).
fn write_line(mut line: String) {
    line.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
}

/// `text` as a JSON string, escaped per RFC 8259.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::push_json_string;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let parsed: String = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
