//! Name resolution for every outgoing call without a thread per call.
//! ureq resolves a URL's host on every call, even one served by a pooled
//! connection, and with a timeout set its default resolver spawns a thread
//! per lookup to bound it. Storage URLs are IP literals or a few stable
//! host names, so: an IP literal is its own address, and a host name is
//! looked up (through ureq's default resolver, bounded by the timeout) at
//! most once per `RESOLVE_CACHE_TTL`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a host name's addresses are used before it is looked up again
/// (a container restarted under the same name may come back elsewhere).
pub const RESOLVE_CACHE_TTL: Duration = Duration::from_secs(10);

/// Host names kept; past this the cache is emptied (a bound, not a policy:
/// a cluster has a few).
const RESOLVE_CACHE_ENTRIES_MAX: usize = 1024;

#[derive(Debug, Default)]
pub struct QuickResolver {
    fallback: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, Vec<SocketAddr>)>>,
}

impl Resolver for QuickResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (host, port) = uri
            .authority()
            .and_then(|authority| {
                let port = authority.port_u16().or(match uri.scheme_str() {
                    Some("https") => Some(443),
                    Some("http") => Some(80),
                    _ => None,
                })?;
                Some((authority.host(), port))
            })
            .ok_or(ureq::Error::HostNotFound)?;
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(self.addresses(&[SocketAddr::new(ip, port)]));
        }
        let key = format!("{host}:{port}");
        if let Some((at, addrs)) = self.lock().get(&key)
            && at.elapsed() < RESOLVE_CACHE_TTL
        {
            return Ok(self.addresses(addrs));
        }
        let resolved = self.fallback.resolve(uri, config, timeout)?;
        let addrs: Vec<SocketAddr> = resolved.iter().copied().collect();
        let mut cache = self.lock();
        if cache.len() >= RESOLVE_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), addrs));
        Ok(resolved)
    }
}

impl QuickResolver {
    fn addresses(&self, addrs: &[SocketAddr]) -> ResolvedSocketAddrs {
        let mut out = self.empty();
        for &addr in addrs {
            // A full list keeps the first addresses, as ureq's own does.
            if out.try_push(addr).is_err() {
                break;
            }
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, Vec<SocketAddr>)>> {
        // A plain map: a poisoned lock still holds a usable one.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::SocketAddr;

    use ureq::config::Config;
    use ureq::http::Uri;
    use ureq::unversioned::resolver::Resolver;
    use ureq::unversioned::transport::NextTimeout;

    use super::QuickResolver;

    fn resolve(resolver: &QuickResolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        resolver
            .resolve(&uri, &Config::default(), NextTimeout::default())
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn ip_literals_are_their_own_address_and_names_are_cached() {
        let resolver = QuickResolver::default();
        assert_eq!(
            resolve(&resolver, "http://127.0.0.1:8001/chunks"),
            ["127.0.0.1:8001".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&resolver, "http://[::1]:9/x"),
            ["[::1]:9".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(resolve(&resolver, "http://127.0.0.1/")[0].port(), 80);
        let first = resolve(&resolver, "http://localhost:8002/status");
        assert!(
            first
                .iter()
                .all(|addr| addr.port() == 8002 && addr.ip().is_loopback())
        );
        assert_eq!(resolver.lock().len(), 1);
        assert_eq!(resolve(&resolver, "http://localhost:8002/other"), first);
    }
}
