//! Requests the server makes to addresses its users gave it (webhook endpoints, push services):
//! only to the public internet, never into the network the server runs in (SSRF). A URL is
//! checked when it is registered and again before each request, and host names are resolved
//! by [`PublicOnly`] at the moment of connecting, so a name that points inside later is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Whether a URL may be a delivery target: `https://` with a host and no credentials in it; a
/// literal IP address must be a public one, and `localhost` is refused. Where the configuration
/// allows loopback (development and tests), loopback targets are accepted, also over `http://`.
/// A host name is checked again on every delivery, against the addresses it resolves to
/// ([`client`]), so a name that points inside the network later is refused then.
pub fn target_allowed(url: &str, allow_loopback: bool) -> Result<(), &'static str> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("not a URL");
    }
    let uri = url.parse::<actix_web::http::Uri>().map_err(|_| "not a URL")?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or("no host")?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("credentials in the URL");
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    let loopback = match literal {
        Some(ip) => ip.is_loopback(),
        None => host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost"),
    };
    if loopback {
        return match uri.scheme_str() {
            Some("https" | "http") if allow_loopback => Ok(()),
            _ => Err("a loopback target"),
        };
    }
    if uri.scheme_str() != Some("https") {
        return Err("not https");
    }
    match literal {
        Some(ip) if !public_ip(ip) => Err("a private address"),
        _ => Ok(()),
    }
}

/// Whether an address is on the public internet: not private, loopback, link-local (cloud
/// metadata services live there), shared, documentation, benchmarking, multicast or reserved.
pub fn public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4);
            }
            let s = v6.segments();
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            if nat64 {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::from(0u128))
        }
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Resolves endpoint host names to public addresses only, at the moment of connecting, so a
/// name that resolves inside the network (now, or after it was registered) is never reached.
struct PublicOnly {
    allow_loopback: bool,
}

impl reqwest13::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest13::dns::Name) -> reqwest13::dns::Resolving {
        let (host, allow_loopback) = (name.as_str().to_string(), self.allow_loopback);
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.into_iter().filter(|a| public_ip(a.ip()) || (allow_loopback && a.ip().is_loopback())).collect();
            if allowed.is_empty() {
                return Err("the endpoint's host resolves to no public address".into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest13::dns::Addrs)
        })
    }
}

/// An HTTP client for user-given targets: public addresses only (loopback too where
/// `allow_loopback`, for development and tests), no redirects (one could lead anywhere), and
/// `timeout` for connecting and for the whole exchange.
pub fn client(user_agent: &str, timeout: Duration, allow_loopback: bool) -> Result<reqwest13::Client, String> {
    // TLS through rustls with the ring provider (the one lettre and the object store use).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest13::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest13::redirect::Policy::none())
        .dns_resolver(Arc::new(PublicOnly { allow_loopback }))
        .user_agent(user_agent)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_inside_the_network_are_refused() {
        for ok in ["https://partner.example.jp/hooks/renkei", "https://203.0.113.9.nip.io/x", "https://8.8.8.8/x"] {
            assert_eq!(target_allowed(ok, false), Ok(()), "{ok}");
        }
        for bad in [
            "http://partner.example.jp/hooks",
            "ftp://partner.example.jp/",
            "https://user:pw@partner.example.jp/",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://app.localhost/x",
            "https://10.0.0.5/x",
            "https://172.16.3.4/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://[64:ff9b::a00:1]/x",
            "not a url",
        ] {
            assert!(target_allowed(bad, false).is_err(), "{bad}");
        }
        assert_eq!(target_allowed("http://127.0.0.1:9000/hook", true), Ok(()));
        assert!(target_allowed("http://10.0.0.1/hook", true).is_err(), "loopback only, not private");
    }

    #[tokio::test]
    async fn names_are_resolved_to_public_addresses_only() {
        use reqwest13::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest13::dns::Name>().unwrap();
        assert!(PublicOnly { allow_loopback: false }.resolve(name("localhost")).await.is_err());
        let loopback: Vec<SocketAddr> =
            PublicOnly { allow_loopback: true }.resolve(name("localhost")).await.unwrap().collect();
        assert!(!loopback.is_empty() && loopback.iter().all(|a| a.ip().is_loopback()));
    }
}
