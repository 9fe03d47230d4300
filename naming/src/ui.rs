//! The web UI at `/`: one page of plain HTML, CSS and JavaScript built
//! into the binary (`ui.html`: no build step, no external asset), which
//! reads the public API from the browser (`/status`, `/files`, `/stat`)
//! and uploads and deletes through it, with the tab's API token when the
//! cluster has tokens. The page itself holds no data, so it needs none.

use common::server::{Reply, STATUS_OK};

/// The page, as served.
pub const PAGE: &str = include_str!("ui.html");

/// What the page may load and run: only itself (its inline script and
/// style) and the API of the server that sent it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data: blob:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub fn page() -> Reply {
    Reply::bytes(
        STATUS_OK,
        "text/html; charset=utf-8",
        PAGE.as_bytes().to_vec(),
    )
    .with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    .with_header("X-Content-Type-Options", "nosniff")
    .with_header("Cache-Control", "no-cache")
}

#[cfg(test)]
mod tests {
    use super::PAGE;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for outside in ["http://", "https://", "//cdn", "src=\"", "@import"] {
            assert!(!PAGE.contains(outside), "{outside}");
        }
        assert!(PAGE.contains("name=\"viewport\""));
    }
}
