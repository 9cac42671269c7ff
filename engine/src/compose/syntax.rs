//! The short syntaxes inside compose values: ports, volumes, durations, shell words, restart
//! policies, extra hosts, byte sizes. Each parser returns a message for the caller to place.

use std::time::Duration;

use super::model::{BindOptions, MountType, Port, ServiceVolume, VolumeOptions};

/// A port `[IP:][HOST[-RANGE]:]CONTAINER[-RANGE][/PROTO]` (docker's `nat.ParsePortSpec`),
/// one [`Port`] per container port.
pub(crate) fn parse_ports_short(spec: &str) -> Result<Vec<Port>, String> {
    let bad = |why: &str| format!("invalid port {spec:?}: {why}");
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((rest, proto)) => (rest, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(&format!("unknown protocol {protocol:?}")));
    }
    // an IPv6 host address is bracketed: `[::1]:8080:80`
    let (host_ip, rest) = if let Some(after) = rest.strip_prefix('[') {
        let (ip, after) = after
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' in the address"))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| bad("an address must be followed by ':'"))?;
        (Some(ip.to_string()), after)
    } else {
        (None, rest)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host, container) = match (host_ip, parts.as_slice()) {
        (None, [container]) => (None, None, *container),
        (None, [host, container]) => (None, Some(*host), *container),
        (None, [ip, host, container]) => (Some(ip.to_string()), Some(*host), *container),
        (Some(ip), [host, container]) => (Some(ip), Some(*host), *container),
        (Some(ip), [container]) => (Some(ip), None, *container),
        _ => return Err(bad("too many colons")),
    };
    if let Some(ip) = &host_ip {
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(&format!("{ip:?} is not an IP address")));
        }
    }
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    let host = host.filter(|h| !h.is_empty());
    let (c_start, c_end) = port_range(container).map_err(|e| bad(&e))?;
    let host_range = host.map(port_range).transpose().map_err(|e| bad(&e))?;
    let count = c_end - c_start + 1;
    let mut ports = Vec::new();
    for (i, target) in (c_start..=c_end).enumerate() {
        let published = match host_range {
            None => None,
            Some((h_start, h_end)) if count == 1 => Some(if h_start == h_end {
                h_start.to_string()
            } else {
                format!("{h_start}-{h_end}")
            }),
            Some((h_start, h_end)) => {
                if u32::from(h_end - h_start) + 1 != u32::from(count) {
                    return Err(bad("the host and container ranges differ in size"));
                }
                Some((h_start + i as u16).to_string())
            }
        };
        ports.push(Port {
            mode: "ingress".into(),
            host_ip: host_ip.clone(),
            target,
            published,
            protocol: protocol.clone(),
            name: None,
            app_protocol: None,
        });
    }
    Ok(ports)
}

/// `N` or `N-M`.
pub(crate) fn port_range(text: &str) -> Result<(u16, u16), String> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let start = port_number(a)?;
    let end = port_number(b)?;
    if end < start {
        return Err(format!("range {text:?} ends before it starts"));
    }
    Ok((start, end))
}

/// A port number, 1 to 65535.
pub(crate) fn port_number(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is out of range 1-65535")),
        Err(_) => Err(format!("{text:?} is not a port number")),
    }
}

/// A volume `[SOURCE:]TARGET[:OPTIONS]` (compose-go's `format.ParseVolume`): a source that
/// starts with `.`, `/` or `~` is a bind mount, another source a named volume, none an
/// anonymous volume. Relative paths are resolved later, by the loader.
pub(crate) fn parse_volume_short(spec: &str) -> Result<ServiceVolume, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, options] => (Some(*source), *target, Some(*options)),
        _ => return Err(format!("invalid volume {spec:?}: too many colons")),
    };
    if target.is_empty() {
        return Err(format!("invalid volume {spec:?}: no target path"));
    }
    if !target.starts_with('/') {
        return Err(format!(
            "invalid volume {spec:?}: the target {target:?} is not an absolute path"
        ));
    }
    let source = source.filter(|s| !s.is_empty());
    let is_bind = source.is_some_and(|s| s.starts_with(['.', '/', '~']));
    let mut volume = ServiceVolume {
        kind: if is_bind {
            MountType::Bind
        } else {
            MountType::Volume
        },
        source: source.map(str::to_string),
        target: target.to_string(),
        ..ServiceVolume::default()
    };
    if is_bind {
        volume.bind = Some(BindOptions {
            create_host_path: true,
            ..BindOptions::default()
        });
    }
    for option in options
        .unwrap_or_default()
        .split(',')
        .filter(|o| !o.is_empty())
    {
        match option {
            "ro" => volume.read_only = true,
            "rw" => volume.read_only = false,
            "z" | "Z" if is_bind => {
                if let Some(bind) = &mut volume.bind {
                    bind.selinux = Some(option.to_string());
                }
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" if is_bind => {
                if let Some(bind) = &mut volume.bind {
                    bind.propagation = Some(option.to_string());
                }
            }
            "nocopy" if !is_bind => {
                volume.volume = Some(VolumeOptions {
                    nocopy: true,
                    ..VolumeOptions::default()
                })
            }
            "consistent" | "cached" | "delegated" => volume.consistency = Some(option.into()),
            other => return Err(format!("invalid volume {spec:?}: unknown option {other:?}")),
        }
    }
    Ok(volume)
}

/// A Go duration (`1m30s`, `1.5h`, `300ms`, `10us`, `0`), as compose reads them.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (use a number with a unit: 1m30s, 10s, 500ms)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_end == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_end].parse().map_err(|_| bad())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * nanos_per;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total as u64))
}

/// A duration as Go prints one (`1m30s`, `1s`, `500ms`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim(nanos as f64 / 1e6));
    }
    let mut out = String::new();
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds = (nanos % 60_000_000_000) as f64 / 1e9;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim(seconds)));
    out
}

fn trim(value: f64) -> String {
    let text = format!("{value:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// Splits a command string into words as compose does (go-shellwords): blanks separate
/// words, single quotes are literal, double quotes keep blanks and take `\` escapes, a `\`
/// outside quotes escapes the next character. No variables, globs or operators.
pub(crate) fn shell_split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(next) => word.push(next),
                    None => word.push('\\'),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err(format!("unclosed single quote in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(format!("unclosed double quote in {text:?}")),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err(format!("unclosed double quote in {text:?}")),
                    }
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A restart policy: `no`, `always`, `on-failure[:N]`, `unless-stopped`.
pub(crate) fn check_restart(text: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "invalid restart policy {text:?} (use \"no\", always, on-failure[:max-retries] or unless-stopped)"
        )
    };
    match text.split_once(':') {
        None if matches!(text, "no" | "always" | "on-failure" | "unless-stopped") => Ok(()),
        Some(("on-failure", n)) if n.parse::<u32>().is_ok() => Ok(()),
        _ => Err(bad()),
    }
}

/// An extra host `host:ip` or `host=ip`, as `host:ip`.
pub(crate) fn extra_host(text: &str) -> Result<String, String> {
    let (host, ip) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| format!("invalid extra host {text:?} (use host:ip or host=ip)"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || ip.is_empty() {
        return Err(format!(
            "invalid extra host {text:?} (use host:ip or host=ip)"
        ));
    }
    Ok(format!("{host}:{ip}"))
}

/// A byte size: a number with an optional `b`, `k`, `m`, `g` (powers of 1024) suffix.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (number, factor) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("invalid size {text:?}"));
    }
    Ok((value * factor as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Port {
        let mut ports = parse_ports_short(spec).expect("parses");
        assert_eq!(ports.len(), 1, "{spec}");
        ports.remove(0)
    }

    #[test]
    fn ports() {
        let p = one("80");
        assert_eq!(
            (p.target, p.published.as_deref(), p.host_ip.as_deref()),
            (80, None, None)
        );
        let p = one("8080:80");
        assert_eq!((p.target, p.published.as_deref()), (80, Some("8080")));
        let p = one("127.0.0.1:8080:80/udp");
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.protocol, "udp");
        let p = one("127.0.0.1::80");
        assert_eq!(
            (p.host_ip.as_deref(), p.published),
            (Some("127.0.0.1"), None)
        );
        let p = one("[::1]:8080:80");
        assert_eq!(p.host_ip.as_deref(), Some("::1"));
        let p = one("8000-8010:80");
        assert_eq!(p.published.as_deref(), Some("8000-8010"));
        let ports = parse_ports_short("9000-9001:90-91").expect("range");
        assert_eq!(
            ports
                .iter()
                .map(|p| (p.target, p.published.clone().unwrap_or_default()))
                .collect::<Vec<_>>(),
            vec![(90, "9000".to_string()), (91, "9001".to_string())]
        );
        assert_eq!(parse_ports_short("3000-3002").expect("range").len(), 3);
    }

    #[test]
    fn bad_ports() {
        for bad in [
            "80:80:80:80",
            "99999",
            "0",
            "abc",
            "80/xyz",
            "1.2.3:80:80",
            "9000-9002:90-91",
            "90-80",
        ] {
            assert!(parse_ports_short(bad).is_err(), "{bad}");
        }
        assert!(parse_ports_short("99999")
            .expect_err("range")
            .contains("99999"));
    }

    #[test]
    fn volumes() {
        let v = parse_volume_short("data:/data").expect("named");
        assert_eq!(
            (v.kind, v.source.as_deref(), v.target.as_str()),
            (MountType::Volume, Some("data"), "/data")
        );
        let v = parse_volume_short("./www:/www:ro").expect("bind");
        assert_eq!(v.kind, MountType::Bind);
        assert!(v.read_only);
        assert_eq!(v.bind.as_ref().map(|b| b.create_host_path), Some(true));
        let v = parse_volume_short("/var/lib").expect("anonymous");
        assert_eq!((v.kind, v.source), (MountType::Volume, None));
        let v = parse_volume_short("/h:/c:rw,z").expect("z");
        assert_eq!(v.bind.and_then(|b| b.selinux).as_deref(), Some("z"));
        for bad in ["a:b:c:d", "data:relative", "data:/x:bogus", "data:"] {
            assert!(parse_volume_short(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["10", "1x", "", "-1s", "s", "1m30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split(r#"sh -c 'echo "hi there"' "a \"b\"" c\ d"#).expect("splits"),
            vec!["sh", "-c", "echo \"hi there\"", "a \"b\"", "c d"]
        );
        assert_eq!(shell_split("  ").expect("empty"), Vec::<String>::new());
        assert_eq!(shell_split("a ''").expect("empty word"), vec!["a", ""]);
        assert!(shell_split("echo 'open").is_err());
    }

    #[test]
    fn restart_hosts_sizes() {
        for ok in [
            "no",
            "always",
            "on-failure",
            "on-failure:3",
            "unless-stopped",
        ] {
            assert!(check_restart(ok).is_ok(), "{ok}");
        }
        for bad in ["yes", "on-failure:x", "sometimes"] {
            assert!(check_restart(bad).is_err(), "{bad}");
        }
        assert_eq!(extra_host("db=10.0.0.2").as_deref(), Ok("db:10.0.0.2"));
        assert_eq!(extra_host("db:10.0.0.2").as_deref(), Ok("db:10.0.0.2"));
        assert_eq!(extra_host("v6=::1").as_deref(), Ok("v6:::1"));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("1gb"), Ok(1 << 30));
    }
}
