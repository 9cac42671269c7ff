//! Docker's string syntaxes for a container's configuration: memory sizes, `-p`, `--ulimit`,
//! `--security-opt`, `--add-host`, `--network` and signals. The API receives the same strings
//! (HostConfig.Binds, PortBindings, Ulimits, ...), so both faces parse them here; a bad value
//! is an [`Error::Invalid`].

use kiln_executor::spec::{NetworkMode, PortMapping, Protocol};
use nix::sys::signal::Signal;

use crate::{Error, Result};

/// An [`Error::Invalid`] saying `what` was wrong, with the parser's own error as its cause.
fn invalid_because(what: String, cause: impl std::fmt::Display) -> Error {
    Error::invalid(cause.to_string()).context(what)
}

/// Parses docker's memory sizes: 512, 64k, 64m, 1g (case-insensitive, optional b).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|e| invalid_because(format!("invalid size {s:?}"), e))?;
    Ok((n * mult as f64) as u64)
}

/// Parses `-p [IP:]HOSTPORT:CONTAINERPORT[/PROTO]` (also `CONTAINERPORT` alone: any host port).
pub fn parse_publish(s: &str) -> Result<PortMapping> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, "tcp")) => (a, Protocol::Tcp),
        Some((a, "udp")) => (a, Protocol::Udp),
        Some((_, p)) => return Err(Error::invalid(format!("invalid protocol {p:?} in {s:?}"))),
        None => (s, Protocol::Tcp),
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let port = |p: &str| -> Result<u16> {
        p.parse()
            .map_err(|e| invalid_because(format!("invalid port {p:?} in {s:?}"), e))
    };
    let (ip, host, cont) = match parts.as_slice() {
        [c] => ("0.0.0.0", "0", *c),
        [c, h] => ("0.0.0.0", *h, *c),
        [c, h, ip] => (*ip, *h, *c),
        _ => return Err(Error::invalid(format!("invalid port mapping {s:?}"))),
    };
    let ip = if ip.is_empty() {
        "0.0.0.0"
    } else {
        ip.trim_start_matches('[').trim_end_matches(']')
    };
    Ok(PortMapping {
        host_ip: ip
            .parse()
            .map_err(|e| invalid_because(format!("invalid address {ip:?} in {s:?}"), e))?,
        host_port: if host.is_empty() { 0 } else { port(host)? },
        container_port: port(cont)?,
        protocol: proto,
    })
}

/// Parses `--ulimit name=soft[:hard]` (`-1` is unlimited).
pub fn parse_ulimit(s: &str) -> Result<oci_spec::runtime::PosixRlimit> {
    use oci_spec::runtime::PosixRlimitType as T;
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| Error::invalid("ulimit must be name=soft[:hard]"))?;
    let typ = match name {
        "nofile" => T::RlimitNofile,
        "nproc" => T::RlimitNproc,
        "core" => T::RlimitCore,
        "stack" => T::RlimitStack,
        "fsize" => T::RlimitFsize,
        "cpu" => T::RlimitCpu,
        "memlock" => T::RlimitMemlock,
        "as" => T::RlimitAs,
        "data" => T::RlimitData,
        "locks" => T::RlimitLocks,
        "msgqueue" => T::RlimitMsgqueue,
        "nice" => T::RlimitNice,
        "rtprio" => T::RlimitRtprio,
        "sigpending" => T::RlimitSigpending,
        other => return Err(Error::invalid(format!("unknown ulimit {other:?}"))),
    };
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    let n = |v: &str| -> Result<u64> {
        if v == "-1" {
            Ok(u64::MAX)
        } else {
            v.parse()
                .map_err(|e| invalid_because(format!("invalid ulimit value {v:?}"), e))
        }
    };
    oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(typ)
        .soft(n(soft)?)
        .hard(n(hard)?)
        .build()
        .map_err(|e| Error::Internal(format!("building the rlimit {s:?}: {e}")))
}

/// What `--security-opt` values ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityOptions {
    /// `no-new-privileges` (default off, as docker).
    pub no_new_privileges: bool,
    /// The seccomp filter applies (off with `seccomp=unconfined`).
    pub seccomp: bool,
}

/// Parses `--security-opt` values in order (a later `no-new-privileges` value wins).
pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOptions> {
    let mut out = SecurityOptions {
        no_new_privileges: false,
        seccomp: true,
    };
    for o in opts {
        match o.as_str() {
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {
                out.no_new_privileges = true
            }
            "no-new-privileges:false" | "no-new-privileges=false" => out.no_new_privileges = false,
            "seccomp=unconfined" | "seccomp:unconfined" => out.seccomp = false,
            other => {
                return Err(Error::invalid(format!(
                    "unsupported --security-opt {other:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// Parses `--add-host host:ip` (or `host=ip`) into the name and the address.
pub fn parse_add_host(s: &str) -> Result<(String, String)> {
    let (name, ip) = s
        .split_once(':')
        .or_else(|| s.split_once('='))
        .ok_or_else(|| Error::invalid(format!("invalid --add-host {s:?}: use host:ip")))?;
    Ok((name.to_string(), ip.to_string()))
}

/// Parses `--network`: none, host, or default (also spelled bridge or slirp4netns).
pub fn parse_network(s: &str) -> Result<NetworkMode> {
    match s {
        "none" => Ok(NetworkMode::None),
        "host" => Ok(NetworkMode::Host),
        "default" | "bridge" | "slirp4netns" => Ok(NetworkMode::Default),
        other => Err(Error::invalid(format!(
            "unknown network {other:?}: use none, host or default"
        ))),
    }
}

/// Parses a signal name or number: `TERM`, `SIGTERM`, `15`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let what = || format!("invalid signal {s}");
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|e| invalid_because(what(), e));
    }
    let up = s.to_ascii_uppercase();
    let full = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    full.parse::<Signal>()
        .map_err(|e| invalid_because(what(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_like_docker() {
        let p = parse_publish("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            (
                p.host_ip.to_string().as_str(),
                p.host_port,
                p.container_port,
                p.protocol
            ),
            ("127.0.0.1", 8080, 80, Protocol::Tcp)
        );
        let p = parse_publish("53:53/udp").unwrap();
        assert_eq!((p.host_port, p.protocol), (53, Protocol::Udp));
        assert_eq!(parse_publish("80").unwrap().host_port, 0);
        assert!(matches!(
            parse_publish("x:80").unwrap_err().kind(),
            Error::Invalid(_)
        ));
        assert!(parse_publish("80/sctp").is_err());
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512").unwrap(), 512);
        let e = parse_size("lots").unwrap_err();
        assert!(matches!(e.kind(), Error::Invalid(_)));
        assert_eq!(e.to_string(), "invalid size \"lots\"");
    }

    #[test]
    fn signals_parse_by_name_or_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("2").unwrap(), Signal::SIGINT);
        assert!(matches!(
            parse_signal("NOPE").unwrap_err().kind(),
            Error::Invalid(_)
        ));
    }

    #[test]
    fn security_opts_and_hosts_parse() {
        let o = parse_security_opts(&["no-new-privileges".into(), "seccomp=unconfined".into()])
            .unwrap();
        assert!(o.no_new_privileges && !o.seccomp);
        assert!(parse_security_opts(&["apparmor=x".into()]).is_err());
        assert_eq!(
            parse_add_host("db:10.0.0.2").unwrap(),
            ("db".to_string(), "10.0.0.2".to_string())
        );
        assert!(parse_add_host("db").is_err());
        assert_eq!(parse_network("bridge").unwrap(), NetworkMode::Default);
        assert!(parse_ulimit("nofile=10:20").is_ok());
        assert!(parse_ulimit("bogus=1").is_err());
    }
}
