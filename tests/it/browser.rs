//! SPEC "Operators", the web UI, in a real browser: headless Chromium
//! (Debian's `chromium` and `chromium-driver`, installed by .ci/run)
//! driven over WebDriver by a few ureq calls. The page shows every server
//! and a file just made by the CLI, turns a stopped server dead, uploads a
//! file that the CLI reads back byte-exact, deletes one after its
//! confirmation, fits a phone's width, and logs no JavaScript error.
//! Screenshots go to target/ui-screenshots/.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{Cluster, Spec, test_bytes, test_dir, wait_until};

/// A chromedriver process and one headless Chromium session in it, both
/// ended when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    fn start(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (.ci/run installs chromium-driver)");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
        };
        wait_until(Duration::from_secs(20), "chromedriver to listen", || {
            browser
                .agent
                .get(&format!("{}/status", browser.base))
                .call()
                .is_ok()
        });
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = browser.call("POST", "/session", capabilities);
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        }
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let text = response
            .body_mut()
            .read_to_string()
            .expect("a WebDriver answer");
        let answer: Value = serde_json::from_str(&text).expect("WebDriver answers JSON");
        let value = answer["value"].clone();
        if let Some(error) = value.get("error") {
            panic!("{method} {path}: {error}: {}", value["message"]);
        }
        if answer.get("sessionId").is_some() {
            return answer;
        }
        value
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page; what it returns.
    fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn element(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found
            .as_object()
            .and_then(|object| object.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// Polls `script` until it returns true.
    fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.eval(script) == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            wait_until(Duration::from_secs(1), "a moment", || true);
        }
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        use base64_png::decode;
        let data = self.session_call("GET", "/screenshot", json!({}));
        let png = decode(data.as_str().expect("base64 PNG"));
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshots folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// The browser log's errors (JavaScript errors, failed loads).
    fn errors(&self) -> Vec<String> {
        let log = self.session_call("POST", "/se/log", json!({"type": "browser"}));
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|entry| entry["level"] == "SEVERE")
                    .map(|entry| entry["message"].to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Base64 as WebDriver sends screenshots, decoded by hand (test-only).
mod base64_png {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        };
        let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
        let mut out = Vec::with_capacity(digits.len() * 3 / 4);
        for group in digits.chunks(4) {
            let bits = group.iter().enumerate().fold(0u32, |acc, (idx, &digit)| {
                acc | (u32::from(digit) << (18 - 6 * idx))
            });
            let bytes = bits.to_be_bytes();
            out.extend_from_slice(&bytes[1..group.len()]);
        }
        out
    }
}

#[test]
fn the_web_ui_shows_the_cluster_uploads_and_deletes_in_chromium() {
    let mut cluster = Cluster::start(Spec::default());
    cluster
        .cli(&["create", "docs/readme.txt", "-"])
        .stdin(b"made by the CLI")
        .assert_ok();
    cluster.cli(&["mkdir", "empty-folder"]).assert_ok();
    let browser = Browser::start(1200, 900);
    browser.open(&format!("{}/", cluster.url()));
    browser.wait_for(
        "the page to load",
        "return document.body.dataset.loaded === 'yes'",
    );
    let servers = browser.eval(
        "return [...document.querySelectorAll('#servers tr')].map(r => [r.dataset.server, r.querySelector('[data-state]').dataset.state])",
    );
    for idx in 0..3 {
        let url = cluster.storage_url(idx);
        assert!(
            servers.as_array().unwrap().contains(&json!([url, "alive"])),
            "{url} not alive in {servers}"
        );
    }
    // The CLI's file, under its folder; an explicit empty folder too (the
    // browser lists one level through the delimiter listing).
    browser.wait_for(
        "the docs/ folder",
        "return !!document.querySelector('tr[data-folder=\"docs/\"]')",
    );
    browser.wait_for(
        "the empty folder",
        "return !!document.querySelector('tr[data-folder=\"empty-folder/\"]')",
    );
    assert_eq!(
        browser.eval("return !!document.querySelector('tr[data-file=\"docs/readme.txt\"]')"),
        json!(false),
        "a file two levels down is not listed at the top"
    );
    browser.click("tr[data-folder=\"docs/\"] a");
    browser.wait_for(
        "the CLI's file",
        "return !!document.querySelector('tr[data-file=\"docs/readme.txt\"]')",
    );
    let timing = browser.eval(
        "const paint = performance.getEntriesByName('first-contentful-paint')[0]; return paint ? paint.startTime : -1",
    );
    let page = cluster.request("GET", "/", &[]);
    eprintln!(
        "web UI: page {} bytes, first contentful paint {timing} ms",
        page.body.len()
    );
    browser.screenshot("cluster-and-files");

    // Upload through the page; the CLI reads it back byte-exact.
    let dir = test_dir();
    let local = dir.join("from-the-browser.bin");
    let bytes = test_bytes(5000, 11);
    std::fs::write(&local, &bytes).unwrap();
    browser.type_into("#upload-file", local.to_str().unwrap());
    browser.click("#upload-button");
    browser.wait_for(
        "the upload",
        "return document.getElementById('message').textContent.startsWith('uploaded docs/from-the-browser.bin')",
    );
    let read = cluster
        .cli(&["read", "docs/from-the-browser.bin", "-"])
        .assert_ok();
    assert!(
        read.stdout == bytes,
        "the browser's upload reads back other bytes"
    );

    // Delete after the confirmation.
    browser.wait_for(
        "the uploaded file listed",
        "return !!document.querySelector('tr[data-file=\"docs/from-the-browser.bin\"]')",
    );
    browser.click("tr[data-file=\"docs/from-the-browser.bin\"] button.danger");
    browser.session_call("POST", "/alert/accept", json!({}));
    browser.wait_for(
        "the delete",
        "return document.getElementById('message').textContent === 'deleted docs/from-the-browser.bin'",
    );
    assert_eq!(cluster.get("docs%2Ffrom-the-browser.bin").status, 404);

    // A folder past one page shows the first page and says there is more.
    for idx in 0..501 {
        assert_eq!(
            cluster.put(&format!("docs/many/f{idx:03}"), b"x").status,
            201
        );
    }
    browser.wait_for(
        "the large folder listed",
        "return !!document.querySelector('tr[data-folder=\"docs/many/\"]')",
    );
    browser.click("tr[data-folder=\"docs/many/\"] a");
    browser.wait_for(
        "the first page of a large folder",
        "return !!document.querySelector('tr[data-more]') && document.querySelectorAll('tr[data-file]').length === 500",
    );

    // A stopped server turns dead on the page by itself.
    let stopped = cluster.storage_url(2);
    cluster.storage(2).kill();
    browser.wait_for(
        "the stopped server dead",
        &format!(
            "const row = document.querySelector('tr[data-server=\"{stopped}\"] [data-state]'); return !!row && row.dataset.state === 'dead'"
        ),
    );
    browser.screenshot("a-server-dead");
    let errors = browser.errors();
    assert!(errors.is_empty(), "JavaScript errors: {errors:?}");
}

#[test]
fn the_web_ui_fits_a_phone_and_asks_for_a_token_when_tokens_are_on() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        api_tokens: Some("browser-token-0123456789 read phone\n"),
        token: Some("browser-token-0123456789"),
        ..Spec::default()
    });
    let browser = Browser::start(390, 844);
    browser.open(&format!("{}/", cluster.url()));
    browser.wait_for(
        "the token box",
        "return getComputedStyle(document.getElementById('token-box')).display === 'block'",
    );
    browser.type_into("#token", "browser-token-0123456789");
    browser.click("#token-form button");
    browser.wait_for(
        "the page to load",
        "return document.body.dataset.loaded === 'yes'",
    );
    // Kept for the tab only.
    assert_eq!(
        browser.eval(
            "return sessionStorage.getItem('harbour-token') !== null && localStorage.length === 0"
        ),
        Value::Bool(true)
    );
    assert_eq!(
        browser.eval("return document.documentElement.scrollWidth <= window.innerWidth"),
        Value::Bool(true),
        "the page is wider than a phone"
    );
    browser.screenshot("phone");
    // The 401 before the token is a failed load the browser logs; nothing else.
    let errors: Vec<String> = browser
        .errors()
        .into_iter()
        .filter(|error| !error.contains("401"))
        .collect();
    assert!(errors.is_empty(), "JavaScript errors: {errors:?}");
}
