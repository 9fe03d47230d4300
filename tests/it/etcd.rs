//! Real etcd members for the tests of the etcd metadata store: `etcd`
//! processes (Debian's `etcd-server`, installed by `.ci/run`) on loopback
//! ports of their own, each in the test's folder, killed by PID when the
//! cluster is dropped, which also removes that folder (kept when the test
//! failed, like a test cluster's): each member preallocates 64 MiB of
//! write-ahead log.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::tls::ClientTls;

use crate::cluster::wait_until;
use crate::pki::TestPki;

pub struct Etcd {
    /// The test's folder, removed on drop.
    dir: PathBuf,
    members: Vec<Member>,
    /// The members serve https:// with this certificate.
    tls: Option<TestPki>,
}

struct Member {
    name: String,
    client_port: u16,
    scheme: &'static str,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// Ports free now (held until all are chosen, so they differ).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("local addr").port())
        .collect()
}

impl Etcd {
    /// Starts `count` members forming one etcd cluster, in `dir` (the
    /// test's, which the etcd removes when dropped), and waits until it
    /// has a leader.
    pub fn start(dir: &Path, count: usize) -> Etcd {
        Etcd::start_with(dir, count, None)
    }

    /// `start`, the clients served over HTTPS with `tls`'s certificate.
    pub fn start_with(dir: &Path, count: usize, tls: Option<TestPki>) -> Etcd {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ports = free_ports(2 * count);
        let token = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("it")
            .to_owned();
        let initial_cluster: Vec<String> = (0..count)
            .map(|idx| format!("m{idx}=http://127.0.0.1:{}", ports[2 * idx + 1]))
            .collect();
        let members = (0..count)
            .map(|idx| {
                let (client_port, peer_port) = (ports[2 * idx], ports[2 * idx + 1]);
                let name = format!("m{idx}");
                let client = format!("{scheme}://127.0.0.1:{client_port}");
                let peer = format!("http://127.0.0.1:{peer_port}");
                let mut args = vec![
                    format!("--name={name}"),
                    format!("--data-dir={}", dir.join(format!("etcd-{name}")).display()),
                    format!("--listen-client-urls={client}"),
                    format!("--advertise-client-urls={client}"),
                    format!("--listen-peer-urls={peer}"),
                    format!("--initial-advertise-peer-urls={peer}"),
                    format!("--initial-cluster={}", initial_cluster.join(",")),
                    "--initial-cluster-state=new".to_owned(),
                    format!("--initial-cluster-token={token}"),
                    // Quick elections: a test kills members.
                    "--heartbeat-interval=50".to_owned(),
                    "--election-timeout=500".to_owned(),
                    "--logger=zap".to_owned(),
                    "--log-level=warn".to_owned(),
                ];
                if let Some(pki) = &tls {
                    args.push(format!("--cert-file={}", pki.cert_file.display()));
                    args.push(format!("--key-file={}", pki.key_file.display()));
                }
                let mut member = Member {
                    name,
                    client_port,
                    scheme,
                    args,
                    log: dir.join(format!("etcd-m{idx}.log")),
                    child: None,
                };
                member.spawn();
                member
            })
            .collect();
        let etcd = Etcd {
            dir: dir.to_path_buf(),
            members,
            tls,
        };
        for idx in 0..count {
            etcd.wait_healthy(idx);
        }
        etcd
    }

    /// Every member's client URL, comma-separated: `ETCD_ENDPOINTS`.
    pub fn endpoints(&self) -> String {
        (0..self.members.len())
            .map(|idx| self.endpoint(idx))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn endpoint(&self, idx: usize) -> String {
        let member = &self.members[idx];
        format!("{}://127.0.0.1:{}", member.scheme, member.client_port)
    }

    /// A call to member 0's JSON gateway (no credentials: the tests' etcd
    /// has auth off, and refuses an `Authorization` it cannot read).
    pub fn call(&self, path: &str, body: &str) -> serde_json::Value {
        let mut response = self
            .agent()
            .post(format!("{}{path}", self.endpoint(0)))
            .send(body)
            .unwrap_or_else(|err| panic!("etcd {path}: {err}"));
        let text = response
            .body_mut()
            .read_to_string()
            .expect("an etcd answer");
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("etcd {path}: {err}: {text}"))
    }

    /// SIGKILL member `idx`.
    pub fn kill(&mut self, idx: usize) {
        self.members[idx].kill();
    }

    /// Starts member `idx` again on its data and ports.
    pub fn restart(&mut self, idx: usize) {
        self.members[idx].kill();
        self.members[idx].spawn();
    }

    /// A plain client of the members (trusting their CA, if any).
    fn agent(&self) -> ureq::Agent {
        let tls = match &self.tls {
            Some(pki) => ClientTls::from_ca_file(&pki.ca_file).expect("the test CA loads"),
            None => ClientTls::none(),
        };
        let config = tls
            .configure(ureq::Agent::config_builder())
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        common::transport::agent(config)
    }

    /// Waits until member `idx` says it is healthy (it has a leader).
    pub fn wait_healthy(&self, idx: usize) {
        let agent = self.agent();
        let url = format!("{}/health", self.endpoint(idx));
        let name = &self.members[idx].name;
        wait_until(
            Duration::from_secs(20),
            &format!("etcd {name} healthy"),
            || {
                agent
                    .get(&url)
                    .call()
                    .ok()
                    .and_then(|mut response| response.body_mut().read_to_string().ok())
                    .is_some_and(|body| body.contains("\"health\":\"true\""))
            },
        );
    }
}

impl Member {
    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the etcd log");
        let child = Command::new("etcd")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start etcd ({err}): install Debian's etcd-server (.ci/run does)")
            });
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
        if std::thread::panicking() {
            eprintln!("etcd logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
