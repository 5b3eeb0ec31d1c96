//! The `[capture] exclude` expressions: a tcpdump-style subset, parsed here so that
//! `check` reports mistakes with their position, and compiled by the agent into a
//! classic BPF program attached to the capture socket (and run in user space for
//! replayed files).
//!
//! Grammar (case-sensitive keywords, as tcpdump):
//!
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := unary (("and" | "&&") unary)*
//! unary   := ("not" | "!") unary | "(" expr ")" | primitive
//! primitive := [dir] "host" ADDR | [dir] "net" CIDR | [dir] "port" N
//!            | [dir] "portrange" N "-" N | "ether" [dir] "host" MAC
//!            | "ip" | "ip6" | "arp" | "tcp" | "udp" | "icmp" | "icmp6"
//! dir     := "src" | "dst"
//! ```
//!
//! `port` matches TCP and UDP, over IPv4 and IPv6, as tcpdump does.

use std::fmt;
use std::net::IpAddr;

/// Which address or port of a packet a primitive looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    Either,
}

/// A leaf of a filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Primitive {
    Host(Dir, IpAddr),
    /// Network address (host bits cleared) and prefix length.
    Net(Dir, IpAddr, u8),
    /// Inclusive port range (a single port is `lo == hi`).
    Port(Dir, u16, u16),
    EtherHost(Dir, [u8; 6]),
    Ip,
    Ip6,
    Arp,
    Tcp,
    Udp,
    Icmp,
    Icmp6,
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    Prim(Primitive),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// A syntax error at a byte offset of the expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at column {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for FilterError {}

#[derive(Clone, Debug)]
struct Tok<'a> {
    text: &'a str,
    at: usize,
}

fn tokenize(s: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes.get(i).copied().unwrap_or(b' ');
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if matches!(c, b'(' | b')' | b'!') {
            i += 1;
        } else if (c == b'&' || c == b'|') && bytes.get(i + 1) == Some(&c) {
            i += 2;
        } else {
            while i < bytes.len() {
                let c = bytes.get(i).copied().unwrap_or(b' ');
                if c.is_ascii_whitespace() || matches!(c, b'(' | b')' | b'!') {
                    break;
                }
                if (c == b'&' || c == b'|') && bytes.get(i + 1) == Some(&c) {
                    break;
                }
                i += 1;
            }
        }
        if let Some(text) = s.get(start..i) {
            out.push(Tok { text, at: start });
        }
    }
    out
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    pos: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.pos).map(|t| t.text)
    }
    fn next(&mut self) -> Option<Tok<'a>> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn err_here(&self, message: impl Into<String>) -> FilterError {
        match self.toks.get(self.pos) {
            Some(t) => FilterError {
                offset: t.at,
                len: t.text.len(),
                message: message.into(),
            },
            None => FilterError {
                offset: self.end,
                len: 0,
                message: message.into(),
            },
        }
    }
    fn err_at(t: &Tok<'_>, message: impl Into<String>) -> FilterError {
        FilterError {
            offset: t.at,
            len: t.text.len(),
            message: message.into(),
        }
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while matches!(self.peek(), Some("and" | "&&")) {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        match self.peek() {
            Some("not" | "!") => {
                self.pos += 1;
                Ok(Filter::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.pos += 1;
                let inner = self.or()?;
                match self.next() {
                    Some(t) if t.text == ")" => Ok(inner),
                    _ => {
                        self.pos = self.pos.saturating_sub(1);
                        Err(self.err_here("expected `)`"))
                    }
                }
            }
            Some(_) => self.primitive(),
            None => Err(self.err_here("expression ends where a primitive was expected")),
        }
    }

    fn primitive(&mut self) -> Result<Filter, FilterError> {
        let Some(first) = self.next() else {
            return Err(self.err_here("expected a primitive"));
        };
        let simple = match first.text {
            "ip" => Some(Primitive::Ip),
            "ip6" => Some(Primitive::Ip6),
            "arp" => Some(Primitive::Arp),
            "tcp" => Some(Primitive::Tcp),
            "udp" => Some(Primitive::Udp),
            "icmp" => Some(Primitive::Icmp),
            "icmp6" => Some(Primitive::Icmp6),
            _ => None,
        };
        if let Some(p) = simple {
            return Ok(Filter::Prim(p));
        }
        if first.text == "ether" {
            let dir = self.dir();
            match self.next() {
                Some(t) if t.text == "host" => {}
                _ => {
                    self.pos = self.pos.saturating_sub(1);
                    return Err(self.err_here("expected `host` after `ether`"));
                }
            }
            let Some(mac_tok) = self.next() else {
                return Err(self.err_here("expected a MAC address"));
            };
            let mac = parse_mac(mac_tok.text)
                .ok_or_else(|| Self::err_at(&mac_tok, "not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
            return Ok(Filter::Prim(Primitive::EtherHost(dir, mac)));
        }
        self.pos -= 1;
        let dir = self.dir();
        let Some(kw) = self.next() else {
            return Err(self.err_here("expected `host`, `net`, `port` or `portrange`"));
        };
        let Some(arg) = self.next() else {
            return Err(self.err_here(format!("`{}` needs a value", kw.text)));
        };
        let prim = match kw.text {
            "host" => {
                let ip: IpAddr = arg.text.parse().map_err(|_| {
                    Self::err_at(&arg, "not an IP address (host names are not resolved)")
                })?;
                Primitive::Host(dir, ip)
            }
            "net" => {
                let (ip, prefix) = parse_cidr(arg.text).map_err(|m| Self::err_at(&arg, m))?;
                Primitive::Net(dir, ip, prefix)
            }
            "port" => {
                let p = parse_port(arg.text).ok_or_else(|| {
                    Self::err_at(
                        &arg,
                        "not a port number (0-65535; service names are not resolved)",
                    )
                })?;
                Primitive::Port(dir, p, p)
            }
            "portrange" => {
                let (lo, hi) = arg
                    .text
                    .split_once('-')
                    .and_then(|(a, b)| Some((parse_port(a)?, parse_port(b)?)))
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| Self::err_at(&arg, "not a port range (LOW-HIGH)"))?;
                Primitive::Port(dir, lo, hi)
            }
            other => {
                return Err(Self::err_at(
                    &kw,
                    format!(
                        "unknown primitive `{other}`; supported: host, net, port, portrange, ether host, ip, ip6, arp, tcp, udp, icmp, icmp6, combined with and/or/not"
                    ),
                ));
            }
        };
        Ok(Filter::Prim(prim))
    }

    fn dir(&mut self) -> Dir {
        match self.peek() {
            Some("src") => {
                self.pos += 1;
                Dir::Src
            }
            Some("dst") => {
                self.pos += 1;
                Dir::Dst
            }
            _ => Dir::Either,
        }
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.split([':', '-']) {
        let slot = out.get_mut(n)?;
        if part.len() != 2 {
            return None;
        }
        *slot = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == 6).then_some(out)
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a host route). Host bits
/// must be zero, so that a typo in the prefix is not silently widened.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`/{p}` is not a prefix length (0-{max})"))?,
    };
    let masked = mask(ip, prefix);
    if masked != ip {
        return Err(format!(
            "`{s}` has host bits set; did you mean `{masked}/{prefix}`?"
        ));
    }
    Ok((ip, prefix))
}

/// The network address of `ip` under a prefix length.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// Parses one exclude expression.
pub fn parse(expr: &str) -> Result<Filter, FilterError> {
    let toks = tokenize(expr);
    let mut p = Parser {
        toks,
        pos: 0,
        end: expr.len(),
    };
    let f = p.or()?;
    if p.pos < p.toks.len() {
        return Err(
            p.err_here("unexpected text after the expression; join primitives with `and`/`or`")
        );
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_design_examples() {
        assert_eq!(
            parse("host 10.0.0.9"),
            Ok(Filter::Prim(Primitive::Host(
                Dir::Either,
                "10.0.0.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
            )))
        );
        assert_eq!(
            parse("port 9700"),
            Ok(Filter::Prim(Primitive::Port(Dir::Either, 9700, 9700)))
        );
        assert!(parse("src net 10.0.0.0/8 and not (tcp or udp port 53)").is_err());
        assert!(parse("src net 10.0.0.0/8 and not (tcp or udp)").is_ok());
        assert!(parse("dst portrange 9700-9701 || ether src host 02:00:00:00:00:01").is_ok());
    }

    #[test]
    fn reports_position_of_mistakes() {
        let e = parse("host 10.0.0.300").err();
        assert_eq!(e.map(|e| e.offset), Some(5));
        let e = parse("port 99999").err();
        assert_eq!(e.map(|e| e.offset), Some(5));
        let e = parse("net 10.0.0.1/8").err();
        assert!(e.is_some_and(|e| e.message.contains("10.0.0.0/8")));
        let e = parse("hots 1.2.3.4").err();
        assert!(e.is_some_and(|e| e.offset == 0 && e.message.contains("unknown primitive")));
        assert!(parse("(tcp").is_err());
        assert!(parse("").is_err());
        assert!(parse("tcp udp").is_err());
    }
}
