//! The progress bar of `create` and `read` on stderr: bytes so far, the
//! rate, the time left and a bar when the total is known, redrawn at most
//! `REDRAWS_PER_SEC` times a second. Shown only when stderr is a terminal,
//! the transfer passes `SHOWN_FROM_BYTES`, and `--quiet` is off: piped or
//! scripted, the output stays exactly as it was. Hand-written (a line and
//! a rate) rather than a crate: what a crate adds here is colours and
//! templates the bar does not need.

use std::io::{self, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use crate::output::human_bytes;

/// Transfers smaller than this show no bar (SPEC: over 1 MiB).
pub const SHOWN_FROM_BYTES: u64 = 1 << 20;

/// The bar is redrawn at most this often.
const REDRAWS_PER_SEC: u32 = 10;

/// Width of the bar itself, in characters.
const BAR_WIDTH: usize = 24;

/// Counts the bytes of a transfer and draws them.
pub struct Progress {
    /// Whether a bar may be drawn at all (a terminal, not `--quiet`).
    enabled: bool,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_drawn: Option<Instant>,
    /// Whether a line is on the screen, to be cleared at the end.
    drawn: bool,
}

impl Progress {
    /// A bar for a transfer of `total` bytes (`None`: unknown, such as
    /// stdin), drawn only if stderr is a terminal and not `quiet`.
    pub fn new(total: Option<u64>, quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && io::stderr().is_terminal(),
            total,
            done: 0,
            started: Instant::now(),
            last_drawn: None,
            drawn: false,
        }
    }

    /// Counts `bytes` more, redrawing if it is time.
    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if !self.enabled || self.done < SHOWN_FROM_BYTES {
            return;
        }
        let now = Instant::now();
        let due = self
            .last_drawn
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1) / REDRAWS_PER_SEC);
        if due {
            self.last_drawn = Some(now);
            self.draw(now.duration_since(self.started));
        }
    }

    fn draw(&mut self, elapsed: Duration) {
        let line = render(self.done, self.total, elapsed);
        let mut err = io::stderr().lock();
        // `\r` and clear-to-end: the line is redrawn in place.
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the bar, so the line printed next starts clean.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One line of the bar: `  12.0 MiB / 100.0 MiB  [===>    ]  12%  45.6 MiB/s  8s left`.
pub fn render(done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let rate = done as f64 / seconds;
    let rate_text = format!("{}/s", human_bytes(rate as u64));
    match total {
        Some(total) if total > 0 => {
            let fraction = (done as f64 / total as f64).min(1.0);
            let filled = (fraction * BAR_WIDTH as f64) as usize;
            let bar: String = (0..BAR_WIDTH)
                .map(|idx| match idx.cmp(&filled) {
                    std::cmp::Ordering::Less => '=',
                    std::cmp::Ordering::Equal => '>',
                    std::cmp::Ordering::Greater => ' ',
                })
                .collect();
            let left = if rate > 0.0 {
                let secs = total.saturating_sub(done) as f64 / rate;
                format!("{} left", human_duration(secs))
            } else {
                String::new()
            };
            format!(
                "{} / {}  [{bar}] {:>3.0}%  {rate_text}  {left}",
                human_bytes(done),
                human_bytes(total),
                fraction * 100.0
            )
        }
        _ => format!("{}  {rate_text}", human_bytes(done)),
    }
}

fn human_duration(secs: f64) -> String {
    let secs = secs.round() as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// A reader that counts what passes through it on `progress`.
pub struct Counted<'a, R> {
    pub inner: R,
    pub progress: &'a mut Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.progress.advance(read as u64);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::render;

    #[test]
    fn a_bar_shows_bytes_share_rate_and_time_left() {
        let line = render(25 << 20, Some(100 << 20), Duration::from_secs(5));
        assert_eq!(
            line,
            "25.0 MiB / 100.0 MiB  [======>                 ]  25%  5.0 MiB/s  15s left"
        );
        let line = render(3 << 30, None, Duration::from_secs(2));
        assert_eq!(line, "3.0 GiB  1.5 GiB/s");
    }
}
