//! Addresses as vipd.yaml writes them, with messages that say what is wrong: a prefix length
//! too long for the family, a host name, a missing port, an IPv6 address with a port but no
//! brackets. The standard library's parsers only say "invalid IP address syntax".

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// A plain IP address: `198.51.100.1` or `2001:db8::1`.
pub(super) fn ip_address(text: &str) -> Result<IpAddr, String> {
    let trimmed = text.trim();
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(ip);
    }
    if trimmed.is_empty() {
        return Err("is empty: expected an IP address (198.51.100.1 or 2001:db8::1)".to_owned());
    }
    if is_host_name(trimmed) {
        return Err(format!(
            "expected an IP address, got a host name `{}`: vipd does not resolve names",
            trimmed.escape_debug()
        ));
    }
    if trimmed.contains('/') {
        return Err(format!(
            "`{}` has a prefix length; expected an address alone",
            trimmed.escape_debug()
        ));
    }
    if trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(ipv4_problem(trimmed));
    }
    if let Some((host, port)) = trimmed.rsplit_once(':')
        && host.parse::<IpAddr>().is_ok()
        && port.parse::<u16>().is_ok()
    {
        return Err(format!("`{trimmed}` has a port; expected an address alone"));
    }
    if trimmed.contains(':') {
        return Err(format!(
            "`{}` is not an IPv6 address (like 2001:db8::1)",
            trimmed.escape_debug()
        ));
    }
    Err(format!(
        "`{}` is not an IP address (like 198.51.100.1 or 2001:db8::1)",
        trimmed.escape_debug()
    ))
}

/// What is wrong with a text of digits and dots that is not an IPv4 address.
fn ipv4_problem(text: &str) -> String {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return format!(
            "`{text}` has {} parts; an IPv4 address has 4, like 198.51.100.1",
            parts.len()
        );
    }
    for part in parts {
        if part.is_empty() {
            return format!("`{text}` has an empty part between dots");
        }
        if part.len() > 1 && part.starts_with('0') {
            return format!(
                "`{part}` in `{text}` has a leading zero, which some tools read as octal; write it without"
            );
        }
        if part.parse::<u8>().is_err() {
            return format!("`{part}` in `{text}` is not a number in 0..=255");
        }
    }
    format!("`{text}` is not an IPv4 address")
}

/// An address with its prefix length: `198.51.100.50/24`, `2001:db8::50/64`.
pub(super) fn ip_network(text: &str) -> Result<IpNet, String> {
    let trimmed = text.trim();
    let Some((address, length)) = trimmed.split_once('/') else {
        return match ip_address(trimmed) {
            Ok(_) => Err(format!(
                "`{trimmed}` needs its prefix length, like `{trimmed}/24` or `{trimmed}/32`"
            )),
            Err(problem) => Err(problem),
        };
    };
    let ip = ip_address(address)?;
    let Ok(length) = length.trim().parse::<u8>() else {
        return Err(format!(
            "prefix length `{}` is not a number",
            length.escape_debug()
        ));
    };
    let (family, longest) = if ip.is_ipv4() {
        ("IPv4", 32)
    } else {
        ("IPv6", 128)
    };
    if length > longest {
        return Err(format!(
            "prefix length {length} is longer than {longest} for an {family} address"
        ));
    }
    IpNet::new(ip, length).map_err(|error| format!("`{trimmed}`: {error}"))
}

/// An address with a port: `198.51.100.1:443`, `[2001:db8::1]:443`.
pub(super) fn socket_address(text: &str) -> Result<SocketAddr, String> {
    let trimmed = text.trim();
    if let Ok(address) = trimmed.parse::<SocketAddr>() {
        return Ok(address);
    }
    let (host, port) = if let Some(bracketed) = trimmed.strip_prefix('[') {
        let Some((host, rest)) = bracketed.split_once(']') else {
            return Err(format!("`{}` has no closing `]`", trimmed.escape_debug()));
        };
        let Some(port) = rest.strip_prefix(':') else {
            return Err(format!(
                "`{}` has no port; write it like `[{host}]:443`",
                trimmed.escape_debug()
            ));
        };
        (host, port)
    } else {
        if trimmed.parse::<Ipv6Addr>().is_ok() {
            // `2001:db8::1:443` is an address of its own; the port was probably meant.
            let example = match trimmed.rsplit_once(':') {
                Some((host, port)) if host.parse::<Ipv6Addr>().is_ok() && !port.is_empty() => {
                    format!("[{host}]:{port}")
                }
                _ => format!("[{trimmed}]:443"),
            };
            return Err(format!(
                "`{trimmed}` is an IPv6 address without a port; with a port it is written in \
                 brackets, like `{example}`"
            ));
        }
        let Some((host, port)) = trimmed.rsplit_once(':') else {
            ip_address(trimmed)?;
            return Err(format!(
                "`{trimmed}` has no port; write it like `{trimmed}:443`"
            ));
        };
        if host.contains(':') {
            return Err(format!(
                "`{}`: an IPv6 address with a port is written in brackets, like \
                 `[2001:db8::1]:443`",
                trimmed.escape_debug()
            ));
        }
        (host, port)
    };
    let ip = ip_address(host)?;
    let port = port_number(port)?;
    Ok(SocketAddr::new(ip, port))
}

fn port_number(text: &str) -> Result<u16, String> {
    match text.parse::<u64>() {
        Ok(port) => {
            u16::try_from(port).map_err(|_| format!("port {port} is out of range 1..=65535"))
        }
        Err(_) => Err(format!("port `{}` is not a number", text.escape_debug())),
    }
}

/// Letters, digits, `-` and `.`, with at least one letter: what a DNS name looks like.
fn is_host_name(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem<T: std::fmt::Debug>(result: Result<T, String>) -> String {
        result.expect_err("the text is not an address")
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            ip_address(" 198.51.100.1 ").unwrap().to_string(),
            "198.51.100.1"
        );
        assert_eq!(ip_network("2001:db8::50/64").unwrap().prefix_len(), 64);
        assert_eq!(socket_address("[2001:db8::1]:443").unwrap().port(), 443);
        assert_eq!(socket_address("198.51.100.1:80").unwrap().port(), 80);
    }

    #[test]
    fn a_prefix_longer_than_the_family_says_so() {
        assert_eq!(
            problem(ip_network("198.51.100.50/33")),
            "prefix length 33 is longer than 32 for an IPv4 address"
        );
        assert_eq!(
            problem(ip_network("2001:db8::1/129")),
            "prefix length 129 is longer than 128 for an IPv6 address"
        );
        assert_eq!(
            problem(ip_network("198.51.100.50/x")),
            "prefix length `x` is not a number"
        );
        assert!(problem(ip_network("198.51.100.50")).contains("needs its prefix length"));
    }

    #[test]
    fn a_host_name_is_named_as_one() {
        let expected =
            "expected an IP address, got a host name `lb1.example`: vipd does not resolve names";
        assert_eq!(problem(ip_address("lb1.example")), expected);
        assert_eq!(problem(socket_address("lb1.example:6443")), expected);
        assert_eq!(problem(ip_network("lb1.example/24")), expected);
    }

    #[test]
    fn ipv4_mistakes_point_at_the_part() {
        assert_eq!(
            problem(ip_address("198.51.100.300")),
            "`300` in `198.51.100.300` is not a number in 0..=255"
        );
        assert!(problem(ip_address("198.51.100")).contains("has 3 parts"));
        assert!(problem(ip_address("198.51.100.010")).contains("leading zero"));
    }

    #[test]
    fn ports_are_explained() {
        assert_eq!(
            problem(socket_address("198.51.100.1:70000")),
            "port 70000 is out of range 1..=65535"
        );
        assert!(problem(socket_address("198.51.100.1")).contains("has no port"));
        assert_eq!(
            problem(socket_address("2001:db8::1:443")),
            "`2001:db8::1:443` is an IPv6 address without a port; with a port it is written in \
             brackets, like `[2001:db8::1]:443`"
        );
        assert!(problem(socket_address("2001:db8::1")).contains("in brackets"));
        assert!(problem(socket_address("2001:db8::1:x")).contains("in brackets"));
        assert!(problem(socket_address("[2001:db8::1]")).contains("has no port"));
        assert!(problem(ip_address("198.51.100.1:80")).contains("has a port"));
    }

    #[test]
    fn no_message_is_the_standard_librarys() {
        for text in ["", "x y", "1.2.3.4.5", "::g", "[::1]:x", "a_b:1", "/24"] {
            for message in [
                ip_address(text).err(),
                ip_network(text).err(),
                socket_address(text).err(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(!message.contains("invalid"), "{text:?}: {message}");
            }
        }
    }
}
