//! docker-compose.yml against the binaries: every variable it sets is one
//! the binary reads, every published port is the one the server listens
//! on, and STORAGE_SERVERS names the storage services at their ports.
//! (`make test` also runs `docker-compose config -q`; running the compose
//! cluster for real is `make test-docker`'s job.)

use std::collections::BTreeMap;
use std::process::Command;

use crate::cluster::bin_path;

#[derive(Default, Debug)]
struct Service {
    binary: String,
    environment: BTreeMap<String, String>,
    published: Vec<(u16, u16)>,
}

/// Reads the services of our compose file: enough YAML for its shape
/// (services at two spaces, their keys at four, list items at six).
fn services() -> BTreeMap<String, Service> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    let (mut in_services, mut current, mut section) = (false, None::<String>, String::new());
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        match indent {
            0 => in_services = trimmed == "services:",
            2 if in_services => {
                let name = trimmed.trim_end_matches(':').to_owned();
                services.entry(name.clone()).or_default();
                current = Some(name);
            }
            4 if in_services => {
                let (key, value) = trimmed.split_once(':').unwrap();
                section = key.to_owned();
                if key == "command" {
                    let binary = value
                        .trim()
                        .trim_start_matches("[\"")
                        .split('"')
                        .next()
                        .unwrap()
                        .to_owned();
                    services.get_mut(current.as_ref().unwrap()).unwrap().binary = binary;
                }
            }
            6 if in_services => {
                let service = services.get_mut(current.as_ref().unwrap()).unwrap();
                match section.as_str() {
                    "environment" => {
                        let (key, value) = trimmed.split_once(':').unwrap();
                        service
                            .environment
                            .insert(key.to_owned(), value.trim().trim_matches('"').to_owned());
                    }
                    "ports" => {
                        let mapping = trimmed.trim_start_matches("- ").trim_matches('"');
                        let (host, container) = mapping.split_once(':').unwrap();
                        service
                            .published
                            .push((host.parse().unwrap(), container.parse().unwrap()));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    services
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn compose_matches_the_binaries_flags_and_the_mvp_shape() {
    let mut services = services();
    // A one-shot service makes the cluster secret; every server reads it.
    let secret_maker = services
        .remove("cluster-secret")
        .expect("a service makes the cluster secret");
    assert!(secret_maker.binary.is_empty() && secret_maker.published.is_empty());
    assert_eq!(
        services.keys().collect::<Vec<_>>(),
        ["naming", "storage1", "storage2"]
    );
    for (name, service) in &services {
        assert_eq!(
            service
                .environment
                .get("CLUSTER_SECRET_FILE")
                .map(String::as_str),
            Some("/secrets/cluster-secret"),
            "{name} reads the cluster secret"
        );
        let help = Command::new(bin_path(&service.binary))
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for key in service.environment.keys() {
            assert!(
                help.contains(key.as_str()),
                "{name} sets {key}, which {} does not read",
                service.binary
            );
        }
        let listen_port = port_of(&service.environment["LISTEN_ADDR"]);
        let mut ports = vec![(listen_port, listen_port)];
        if let Some(s3) = service.environment.get("S3_LISTEN_ADDR") {
            ports.push((port_of(s3), port_of(s3)));
        }
        assert_eq!(
            service.published, ports,
            "{name} publishes its listen ports"
        );
    }
    let naming = &services["naming"];
    assert_eq!(naming.binary, "harbour-naming");
    assert_eq!(port_of(&naming.environment["LISTEN_ADDR"]), 8000);
    // The S3 API, on the port S3 tools expect of a local server.
    assert_eq!(port_of(&naming.environment["S3_LISTEN_ADDR"]), 9000);
    let storage_urls: Vec<&str> = naming.environment["STORAGE_SERVERS"].split(',').collect();
    assert_eq!(storage_urls.len(), 2);
    for url in &storage_urls {
        let (host, port) = url.trim_start_matches("http://").split_once(':').unwrap();
        let storage = &services[host];
        assert_eq!(storage.binary, "harbour-storage");
        assert_eq!(
            port_of(&storage.environment["LISTEN_ADDR"]),
            port.parse::<u16>().unwrap(),
            "{url}"
        );
    }
    let replication: usize = naming.environment["REPLICATION_FACTOR"].parse().unwrap();
    assert!(replication >= 1 && replication <= storage_urls.len());
    assert_eq!(
        port_of(&services["storage1"].environment["LISTEN_ADDR"]),
        8001
    );
    assert_eq!(
        port_of(&services["storage2"].environment["LISTEN_ADDR"]),
        8002
    );
}
