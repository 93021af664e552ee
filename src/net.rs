//! The client's address: the TCP peer, or, when the peer is a proxy the
//! operator trusts (`KEYWARD_TRUSTED_PROXIES`), the address that proxy
//! forwarded. It drives the per-address limits, the logs and, for keys,
//! the address allowlists. Outside `web/` and `api/` so both use it.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest};
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` and `X-Real-IP` are believed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// Entries of a forwarded chain looked at, at most: the rest of a huge
/// header is ignored.
const MAX_HOPS: usize = 32;

impl TrustedProxies {
    /// Loopback only: a proxy on the same machine.
    pub fn loopback() -> Self {
        Self(vec![
            IpNet::from_str("127.0.0.1/32").expect("valid network"),
            IpNet::from_str("::1/128").expect("valid network"),
        ])
    }

    /// Trusts no proxy: the peer is always the client.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the request's forwarding headers:
    /// the right-most address of `X-Forwarded-For` that is not a trusted
    /// proxy (each proxy appends the address it saw), else `X-Real-IP`,
    /// else the peer. Headers from an untrusted peer are ignored; a
    /// malformed one from a trusted peer falls back to the peer.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&[u8]], real_ip: Option<&[u8]>) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        self.behind(peer, forwarded_for.iter().copied(), || real_ip)
    }

    /// `client` for a `peer` already known to be trusted (and canonical).
    /// `X-Real-IP` is only read when there is no `X-Forwarded-For`.
    fn behind<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
        real_ip: impl FnOnce() -> Option<&'a [u8]>,
    ) -> IpAddr {
        let mut forwarded_for = forwarded_for.rev().peekable();
        if forwarded_for.peek().is_some() {
            // Entries are read one by one from the right, as bytes: the
            // proxy's own (right-most) entry is read even when a client put
            // bytes that are not text further left.
            let mut last = peer;
            let entries = forwarded_for
                .flat_map(|value| value.rsplit(|&b| b == b','))
                .take(MAX_HOPS);
            for entry in entries {
                let Some(ip) = std::str::from_utf8(entry).ok().and_then(|e| parse_entry(e.trim())) else {
                    return peer;
                };
                if !self.contains(ip) {
                    return ip;
                }
                last = ip;
            }
            // Every hop is a trusted proxy: the first one is the client.
            return last;
        }
        real_ip()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| parse_entry(v.trim()))
            .unwrap_or(peer)
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// CIDRs or single addresses, separated by commas or spaces.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split([',', ' ', '\n', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                IpNet::from_str(e)
                    .or_else(|_| IpAddr::from_str(e).map(IpNet::from))
                    .map_err(|_| format!("{e:?} is not an IP address or CIDR"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

/// An IPv4 address mapped into IPv6 is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One entry of `X-Forwarded-For`: an address, possibly with a port
/// (`1.2.3.4:5678`, `[::1]:80`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if entry.len() > 64 {
        return None;
    }
    if let Ok(ip) = IpAddr::from_str(entry) {
        return Some(canonical(ip));
    }
    if let Ok(sock) = std::net::SocketAddr::from_str(entry) {
        return Some(canonical(sock.ip()));
    }
    None
}

/// The client's address (see the module docs); `None` only when the
/// connection has no peer address (a test request).
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    let peer = canonical(req.peer_addr()?.ip());
    let trusted = req.app_data::<web::Data<TrustedProxies>>();
    // Headers are read only from a trusted proxy (this runs on every call),
    // in place: nothing is collected or allocated.
    let Some(trusted) = trusted.filter(|t| t.contains(peer)) else {
        return Some(peer);
    };
    let headers = req.headers();
    let forwarded = headers.get_all(&X_FORWARDED_FOR).map(HeaderValue::as_bytes);
    Some(trusted.behind(peer, forwarded, || headers.get(&X_REAL_IP).map(HeaderValue::as_bytes)))
}

/// The key the per-address limits count under: the address, but for IPv6
/// its /64 (one subscriber usually holds a whole /64, and could otherwise
/// take a fresh address for every request).
pub fn limit_key(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => address.to_owned(),
    }
}

/// The client's address as text, for logs and the per-address limits.
pub fn client_addr(req: &HttpRequest) -> String {
    client_ip(req).map(|ip| ip.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let t = TrustedProxies::loopback();
        assert_eq!(
            t.client(ip("203.0.113.9"), &[b"1.2.3.4"], Some(b"5.6.7.8")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t: TrustedProxies = "127.0.0.1/32, 10.0.0.0/8".parse().unwrap();
        // The client forged the first entry; 198.51.100.7 reached our proxies.
        let chain: &[&[u8]] = &[b"1.2.3.4, 198.51.100.7", b"10.1.2.3"];
        assert_eq!(t.client(ip("127.0.0.1"), chain, None), ip("198.51.100.7"));
        assert_eq!(
            t.client(ip("127.0.0.1"), &[b"10.0.0.5, 10.0.0.6"], None),
            ip("10.0.0.5")
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), &[b"[2001:db8::1]:443"], None),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn x_real_ip_counts_only_without_x_forwarded_for() {
        let t = TrustedProxies::loopback();
        assert_eq!(t.client(ip("::1"), &[], Some(b" 192.0.2.1 ")), ip("192.0.2.1"));
        assert_eq!(
            t.client(ip("::1"), &[b"192.0.2.2"], Some(b"192.0.2.1")),
            ip("192.0.2.2")
        );
    }

    #[test]
    fn malformed_or_huge_headers_fall_back_to_the_peer() {
        let t = TrustedProxies::loopback();
        let peer = ip("127.0.0.1");
        assert_eq!(t.client(peer, &[b"not an address"], None), peer);
        assert_eq!(t.client(peer, &[b"1.2.3.4, 5.6.7.8, "], None), peer);
        assert_eq!(t.client(peer, &[b"5.6.7.8", b"nonsense"], None), peer);
        assert_eq!(t.client(peer, &[b"\xff\xfe"], None), peer);
        // A client's garbage to the left of what the proxy appended is
        // never reached.
        assert_eq!(t.client(peer, &[b"\xff, 203.0.113.9"], None), ip("203.0.113.9"));
        assert_eq!(t.client(peer, &[], Some(b"garbage")), peer);
        let huge = format!("{}5.6.7.8", "1.2.3.4, ".repeat(10_000));
        assert_eq!(t.client(peer, &[huge.as_bytes()], None), ip("5.6.7.8"));
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        assert_eq!(limit_key("2001:db8:1:2:aaaa::1"), limit_key("2001:db8:1:2:bbbb::2"));
        assert_ne!(limit_key("2001:db8:1:2::1"), limit_key("2001:db8:1:3::1"));
        assert_eq!(limit_key("203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let t = TrustedProxies::loopback();
        assert!(t.contains(ip("::ffff:127.0.0.1")));
        assert_eq!(t.client(ip("::ffff:203.0.113.1"), &[], None), ip("203.0.113.1"));
    }

    #[test]
    fn the_setting_parses_cidrs_and_addresses() {
        let t: TrustedProxies = "10.0.0.0/8 192.168.1.1,::1/128".parse().unwrap();
        assert!(t.contains(ip("10.9.9.9")) && t.contains(ip("192.168.1.1")) && t.contains(ip("::1")));
        assert!(!t.contains(ip("192.168.1.2")));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::none());
    }
}
