//! Which destinations a capture may connect to.
//!
//! A capture service fetches URLs chosen by its users, so it must not become a
//! way into the network it runs in: loopback, private, link-local, shared
//! (CGNAT), documentation, benchmarking, multicast and reserved ranges are
//! refused unless private networks are explicitly allowed. The check runs on
//! every resolved address, for every connection (seed, redirect hop and
//! requisite), so a public name that resolves to a private address is
//! refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True when `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// IANA's IPv6 special-purpose ranges (and the other non-global ones),
/// refused whatever they carry.
fn is_special_v6(seg: &[u16; 8]) -> bool {
    seg[0] & 0xff00 == 0xff00 // multicast ff00::/8
        || seg[0] & 0xfe00 == 0xfc00 // unique local fc00::/7
        || seg[0] & 0xffc0 == 0xfe80 // link-local fe80::/10
        || seg[0] & 0xffc0 == 0xfec0 // site-local (deprecated) fec0::/10
        || (seg[0] == 0x2001 && seg[1] < 0x0200) // IETF protocol assignments 2001::/23, Teredo 2001::/32 among them
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation 2001:db8::/32
        || seg[0] & 0xfff0 == 0x3ff0 // documentation 3fff::/20
        || seg[0] == 0x5f00 // SRv6 SIDs 5f00::/16
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 1]) // dummy prefix 100:0:0:1::/64
        || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001) // local-use NAT64 64:ff9b:1::/48
        || seg[0] & 0xe000 == 0 && !(seg[0..6] == [0, 0, 0, 0, 0, 0] || seg[0..6] == [0, 0, 0, 0, 0, 0xffff] || seg[0..6] == [0, 0, 0, 0, 0xffff, 0] || (seg[0] == 0x0064 && seg[1] == 0xff9b))
    // everything else below 2000::/3 is reserved by the IETF
}

/// The IPv4 address an IPv6 address carries, where its prefix says it
/// carries one: IPv4-mapped (`::ffff:a.b.c.d`), SIIT (`::ffff:0:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4
/// (`2002:AABB:CCDD::/48`) and ISATAP interface identifiers
/// (`…:0:5efe:a.b.c.d`).
fn embedded_v4(seg: &[u16; 8]) -> Option<Ipv4Addr> {
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    let low = v4(seg[6], seg[7]);
    match seg {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(v4(*hi, *lo)),
        [_, _, _, _, id, 0x5efe, _, _] if id & 0xfcff == 0 => Some(low),
        _ => None,
    }
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() || is_special_v6(&seg) {
        return false;
    }
    match embedded_v4(&seg) {
        Some(v4) => is_public_v4(v4),
        None => true,
    }
}

/// Host names that always mean this machine or its network, refused before
/// any lookup.
pub fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_ranges_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "ff02::1",
            // IPv4-compatible and SIIT forms of private and loopback
            // addresses.
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:10.0.0.1",
            "::ffff:0:127.0.0.1",
            // 6to4 of loopback and private addresses.
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2002:a9fe:a9fe::1",
            // Local-use NAT64, whatever it embeds.
            "64:ff9b:1::a00:1",
            "64:ff9b:1::808:808",
            // Teredo and the rest of 2001::/23.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:1ff::1",
            // Documentation (3fff::/20), SRv6, discard-only, dummy prefix.
            "3fff::1",
            "3fff:fff:ffff::1",
            "5f00::1",
            "100::1",
            "100:0:0:1::1",
            // ISATAP interface identifiers carrying private addresses.
            "2606:4700::5efe:10.0.0.1",
            "2606:4700::200:5efe:192.168.1.1",
            // Reserved below 2000::/3.
            "1000::1",
            "400::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:0:8.8.8.8",
            "2606:4700::5efe:8.8.8.8",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn local_names() {
        assert!(is_local_name("localhost"));
        assert!(is_local_name("LOCALHOST."));
        assert!(is_local_name("printer.local"));
        assert!(!is_local_name("aleppo-news.example.org"));
    }
}
