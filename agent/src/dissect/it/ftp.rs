//! FTP control-channel recogniser: server replies and client commands.
//!
//! Spec: RFC 959 §4.2 (replies: three digits, the first 1–5 and the second 0–5, then SP or
//! `-` for a multi-line reply, text, CRLF; the greeting is 220, or 120 / 421), §4.1 and
//! §5.3.1 (commands: case-insensitive four-letter or three-letter keywords, SP and
//! argument, CRLF); RFC 2228 (AUTH, PBSZ, PROT, …), RFC 2389 (FEAT, OPTS), RFC 2428
//! (EPRT, EPSV), RFC 3659 (SIZE, MDTM, MLSD, MLST, REST), RFC 4217 (AUTH TLS), RFC 7151
//! (HOST). Zeek's dynamic detection keys FTP on `USER` from the client and on a 220
//! greeting followed by 230/331 from the server.
//!
//! What convinces on port 21: any well-formed reply line, or a known command with a
//! printable argument line. Elsewhere, where SMTP, POP3 and friends also answer `220` and
//! take `USER`/`PASS`: a 120/220 greeting whose line says "FTP", or a command only FTP
//! has (`AUTH TLS`/`AUTH SSL`, FEAT, SYST, PASV, EPSV, EPRT, PORT, MLSD, PBSZ, PROT).

use super::{Stop, line_end, printable};
use crate::dissect::{Hint, Probe, byte};

/// A control line is looked at up to this many bytes (RFC 959 keeps them short).
const MAX_LINE: usize = 512;

/// Commands of RFC 959 and its extensions.
const COMMANDS: [&[u8; 4]; 50] = [
    b"USER", b"PASS", b"ACCT", b"CWD ", b"CDUP", b"SMNT", b"QUIT", b"REIN", b"PORT", b"PASV",
    b"TYPE", b"STRU", b"MODE", b"RETR", b"STOR", b"STOU", b"APPE", b"ALLO", b"REST", b"RNFR",
    b"RNTO", b"ABOR", b"DELE", b"RMD ", b"MKD ", b"PWD ", b"LIST", b"NLST", b"SITE", b"SYST",
    b"STAT", b"HELP", b"NOOP", b"AUTH", b"PBSZ", b"PROT", b"CCC ", b"FEAT", b"OPTS", b"EPRT",
    b"EPSV", b"SIZE", b"MDTM", b"MLSD", b"MLST", b"HOST", b"LANG", b"XPWD", b"XMKD", b"XCWD",
];

/// Commands no other common text protocol uses (AUTH is checked for TLS/SSL apart).
const FTP_ONLY: [&[u8; 4]; 9] = [
    b"FEAT", b"SYST", b"PASV", b"EPSV", b"EPRT", b"PORT", b"MLSD", b"PBSZ", b"PROT",
];

pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp {
        return Probe::No;
    }
    if byte(payload, 0).is_ascii_digit() {
        reply(payload, hint.port)
    } else {
        command(payload, hint.port)
    }
}

/// A reply line (RFC 959 §4.2).
fn reply(p: &[u8], port: bool) -> Probe {
    let code_ok = [(b'1', b'5'), (b'0', b'5'), (b'0', b'9')]
        .iter()
        .enumerate()
        .all(|(i, &(lo, hi))| p.get(i).is_none_or(|b| (lo..=hi).contains(b)));
    if !code_ok {
        return Probe::No;
    }
    let Some(&sep) = p.get(3) else {
        return if port { Probe::Unsure } else { Probe::No };
    };
    if sep != b' ' && sep != b'-' {
        return Probe::No;
    }
    let end = match line_end(p, 4, MAX_LINE, |b| printable(b) || b == b'\t' || b >= 0x80) {
        Ok(end) => end,
        Err(Stop::Short) => return if port { Probe::Unsure } else { Probe::No },
        Err(Stop::Bad) => return Probe::No,
    };
    if port {
        return Probe::Match;
    }
    let greeting = p.starts_with(b"220") || p.starts_with(b"120");
    let says_ftp = p
        .get(4..end)
        .is_some_and(|t| t.windows(3).any(|w| w.eq_ignore_ascii_case(b"ftp")));
    if greeting && says_ftp {
        Probe::Match
    } else {
        Probe::No
    }
}

/// A command line (RFC 959 §5.3.1).
fn command(p: &[u8], port: bool) -> Probe {
    if !byte(p, 0).is_ascii_alphabetic() {
        return Probe::No;
    }
    let Some(word) = p.get(..4) else {
        // A keyword cut short.
        let plausible = port && p.iter().all(u8::is_ascii_alphabetic);
        return if plausible { Probe::Unsure } else { Probe::No };
    };
    let upper = |i: usize| byte(word, i).to_ascii_uppercase();
    let key = [upper(0), upper(1), upper(2), upper(3)];
    // Three-letter keywords are stored with their space; accept CR too ("PWD\r\n").
    let key3 = [key[0], key[1], key[2], b' '];
    let (known, arg_at) = if COMMANDS.contains(&&key) {
        (key, if key[3] == b' ' { 3 } else { 4 })
    } else if matches!(key[3], b'\r' | b'\n') && COMMANDS.contains(&&key3) {
        (key3, 3)
    } else {
        return Probe::No;
    };
    // The keyword is followed by SP and an argument, or ends the line.
    let next = byte(p, arg_at);
    if p.len() > arg_at && next != b' ' && next != b'\r' && next != b'\n' {
        return Probe::No;
    }
    let line = match line_end(p, arg_at, MAX_LINE, |b| printable(b) || b >= 0x80) {
        Ok(end) => p.get(arg_at..end).unwrap_or(&[]),
        Err(Stop::Short) => return if port { Probe::Unsure } else { Probe::No },
        Err(Stop::Bad) => return Probe::No,
    };
    if port {
        return Probe::Match;
    }
    let arg = line.strip_prefix(b" ").unwrap_or(line);
    let ftp_only = FTP_ONLY.contains(&&known)
        || (known == *b"AUTH"
            && (arg.eq_ignore_ascii_case(b"TLS") || arg.eq_ignore_ascii_case(b"SSL")));
    if ftp_only { Probe::Match } else { Probe::No }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: Hint = Hint {
        port: true,
        tcp: true,
        from_client: false,
    };
    const OFF: Hint = Hint {
        port: false,
        tcp: true,
        from_client: false,
    };

    #[test]
    fn replies() {
        assert_eq!(probe(b"220 (vsFTPd 3.0.5)\r\n", PORT), Probe::Match);
        assert_eq!(probe(b"220 (vsFTPd 3.0.5)\r\n", OFF), Probe::Match);
        assert_eq!(
            probe(b"220 ProFTPD Server (Debian) [::ffff:10.0.0.1]\r\n", OFF),
            Probe::Match
        );
        // A greeting that does not say FTP is recognised on port 21 only.
        assert_eq!(
            probe(b"220-FileZilla Server 1.8.0\r\n220 Please visit\r\n", PORT),
            Probe::Match
        );
        assert_eq!(
            probe(b"220-FileZilla Server 1.8.0\r\n220 Please visit\r\n", OFF),
            Probe::No
        );
        assert_eq!(
            probe(b"331 Please specify the password.\r\n", PORT),
            Probe::Match
        );
        assert_eq!(
            probe(b"331 Please specify the password.\r\n", OFF),
            Probe::No
        );
        // SMTP greets with 220 too.
        assert_eq!(
            probe(b"220 mail.example.com ESMTP Postfix\r\n", OFF),
            Probe::No
        );
        assert_eq!(
            probe(b"220 mail.example.com ESMTP Postfix\r\n", PORT),
            Probe::Match
        );
        assert_eq!(probe(b"220 Service ready", PORT), Probe::Unsure);
        assert_eq!(probe(b"22", PORT), Probe::Unsure);
        assert_eq!(probe(b"620 x\r\n", PORT), Probe::No);
        assert_eq!(probe(b"2200 x\r\n", PORT), Probe::No);
        assert_eq!(probe(b"220 a\x01b\r\n", PORT), Probe::No);
    }

    #[test]
    fn commands() {
        for c in [
            &b"USER anonymous\r\n"[..],
            b"PASS x\r\n",
            b"user bob\r\n",
            b"PWD\r\n",
            b"CWD /pub\r\n",
            b"QUIT\r\n",
        ] {
            assert_eq!(
                probe(c, PORT),
                Probe::Match,
                "{}",
                String::from_utf8_lossy(c)
            );
            assert_eq!(probe(c, OFF), Probe::No, "{}", String::from_utf8_lossy(c));
        }
        for c in [
            &b"AUTH TLS\r\n"[..],
            b"FEAT\r\n",
            b"EPSV\r\n",
            b"PORT 10,0,0,1,4,1\r\n",
        ] {
            assert_eq!(
                probe(c, OFF),
                Probe::Match,
                "{}",
                String::from_utf8_lossy(c)
            );
        }
        assert_eq!(probe(b"AUTH PLAIN dXNlcg==\r\n", OFF), Probe::No);
        assert_eq!(probe(b"USERS x\r\n", PORT), Probe::No);
        assert_eq!(probe(b"GET / HTTP/1.1\r\n", PORT), Probe::No);
        assert_eq!(probe(b"US", PORT), Probe::Unsure);
        assert_eq!(probe(b"USER anonym", PORT), Probe::Unsure);
    }
}
