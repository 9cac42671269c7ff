//! Containers: create, start, attach (hijacked), wait, kill, stop, restart, resize, remove,
//! list, inspect, logs and prune, each over the engine operation the CLI uses too.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use kiln_engine::containers::config::parse_signal;
use kiln_engine::containers::log::{parse_rfc3339_nanos, LogChunk, LogStream};
use kiln_engine::containers::{
    ContainerFilter, CreateOptions, Healthcheck, LogsOptions, RestartPolicy, StartOutcome,
    WaitCondition,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::images::status_only;
use crate::router::{Call, HandlerResult, Router};
use crate::stream::{encode_frames, ChannelBody, StdStream};
use crate::{empty, json_response, ApiError};

/// Registers the container routes.
pub fn routes(router: &mut Router) {
    router
        .route(Method::POST, "/containers/create", |c| Box::pin(create(c)))
        .route(Method::GET, "/containers/json", |c| Box::pin(list(c)))
        .route(Method::POST, "/containers/prune", |c| Box::pin(prune(c)))
        .route(Method::GET, "/containers/{id}/json", |c| {
            Box::pin(inspect(c))
        })
        .route(Method::POST, "/containers/{id}/start", |c| {
            Box::pin(start(c))
        })
        .route(Method::POST, "/containers/{id}/attach", |c| {
            Box::pin(attach(c))
        })
        .route(Method::POST, "/containers/{id}/wait", |c| Box::pin(wait(c)))
        .route(Method::POST, "/containers/{id}/kill", |c| Box::pin(kill(c)))
        .route(Method::POST, "/containers/{id}/stop", |c| Box::pin(stop(c)))
        .route(Method::POST, "/containers/{id}/restart", |c| {
            Box::pin(restart(c))
        })
        .route(Method::POST, "/containers/{id}/resize", |c| {
            Box::pin(resize(c))
        })
        .route(Method::GET, "/containers/{id}/logs", |c| Box::pin(logs(c)))
        .route(Method::DELETE, "/containers/{id}", |c| Box::pin(remove(c)));
}

/// Runs blocking engine work off the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("an engine task failed: {e}")))?
}

/// A docker string list that may also be sent as one string (`Cmd`, `Entrypoint`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PortBindingBody {
    host_ip: String,
    host_port: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MountBody {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    target: String,
    read_only: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UlimitBody {
    name: String,
    soft: i64,
    hard: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfigBody {
    binds: Option<Vec<String>>,
    port_bindings: Option<BTreeMap<String, Option<Vec<PortBindingBody>>>>,
    publish_all_ports: bool,
    auto_remove: bool,
    network_mode: String,
    mounts: Option<Vec<MountBody>>,
    tmpfs: Option<BTreeMap<String, String>>,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    security_opt: Option<Vec<String>>,
    readonly_rootfs: bool,
    init: Option<bool>,
    memory: i64,
    pids_limit: Option<i64>,
    nano_cpus: i64,
    cpu_quota: i64,
    cpu_period: i64,
    ulimits: Option<Vec<UlimitBody>>,
    extra_hosts: Option<Vec<String>>,
    dns: Option<Vec<String>>,
    group_add: Option<Vec<String>>,
    restart_policy: Option<RestartPolicy>,
}

/// The body of `POST /containers/create` (docker's container config with its host config).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    image: String,
    cmd: Option<StringOrList>,
    entrypoint: Option<StringOrList>,
    env: Option<Vec<String>>,
    working_dir: String,
    user: String,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    labels: Option<BTreeMap<String, String>>,
    hostname: String,
    stop_signal: Option<String>,
    stop_timeout: Option<i64>,
    host_config: HostConfigBody,
    healthcheck: Option<Healthcheck>,
    networking_config: crate::networks::NetworkingConfigBody,
}

impl CreateBody {
    /// The engine's options: docker's typed fields turned into the syntaxes the CLI's flags
    /// use (`-p`, `--mount`, `--ulimit`), which the engine parses for both.
    fn into_options(self, name: Option<String>) -> Result<CreateOptions, ApiError> {
        if self.image.is_empty() {
            return Err(ApiError::bad_request("No image specified"));
        }
        let h = self.host_config;
        let mut publish = Vec::new();
        for (port, bindings) in h.port_bindings.unwrap_or_default() {
            for b in bindings.unwrap_or_default() {
                let ip = if b.host_ip.contains(':') {
                    format!("[{}]", b.host_ip)
                } else {
                    b.host_ip
                };
                publish.push(format!("{ip}:{}:{port}", b.host_port));
            }
        }
        let mut mounts: Vec<String> = h
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let mut spec = format!("type={},target={}", m.kind, m.target);
                if !m.source.is_empty() {
                    spec.push_str(&format!(",source={}", m.source));
                }
                if m.read_only {
                    spec.push_str(",readonly");
                }
                spec
            })
            .collect();
        for (target, opts) in h.tmpfs.unwrap_or_default() {
            let size = opts
                .split(',')
                .find_map(|o| o.strip_prefix("size="))
                .map(|s| format!(",size={s}"))
                .unwrap_or_default();
            mounts.push(format!("type=tmpfs,target={target}{size}"));
        }
        let group_add = h
            .group_add
            .unwrap_or_default()
            .iter()
            .map(|g| {
                g.parse::<u32>().map_err(|_| {
                    ApiError::bad_request(format!("group {g:?}: only numeric groups are supported"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cpu_millis = if h.nano_cpus > 0 {
            Some((h.nano_cpus / 1_000_000) as u64)
        } else if h.cpu_quota > 0 && h.cpu_period > 0 {
            Some((h.cpu_quota.saturating_mul(1000) / h.cpu_period) as u64)
        } else {
            None
        };
        let positive = |n: i64| u64::try_from(n).ok().filter(|n| *n > 0);
        let endpoints = self.networking_config.into_endpoints(&h.network_mode);
        Ok(CreateOptions {
            name,
            image: self.image,
            entrypoint: self.entrypoint.map(StringOrList::into_vec),
            cmd: self.cmd.map(StringOrList::into_vec).unwrap_or_default(),
            env: self.env.unwrap_or_default(),
            workdir: Some(self.working_dir).filter(|w| !w.is_empty()),
            user: Some(self.user).filter(|u| !u.is_empty()),
            group_add,
            tty: self.tty,
            open_stdin: self.open_stdin,
            stdin_once: self.stdin_once,
            labels: self.labels.unwrap_or_default(),
            hostname: Some(self.hostname).filter(|h| !h.is_empty()),
            volumes: h.binds.unwrap_or_default(),
            mounts,
            network: endpoints.network.clone(),
            publish,
            publish_all: h.publish_all_ports,
            add_hosts: h.extra_hosts.unwrap_or_default(),
            dns: h.dns.unwrap_or_default(),
            cap_add: h.cap_add.unwrap_or_default(),
            cap_drop: h.cap_drop.unwrap_or_default(),
            security_opt: h.security_opt.unwrap_or_default(),
            read_only: h.readonly_rootfs,
            init: h.init.unwrap_or(false),
            memory: positive(h.memory),
            pids_limit: h.pids_limit.and_then(positive),
            cpu_millis,
            ulimits: h
                .ulimits
                .unwrap_or_default()
                .into_iter()
                .map(|u| format!("{}={}:{}", u.name, u.soft, u.hard))
                .collect(),
            auto_remove: h.auto_remove,
            stop_signal: self.stop_signal.filter(|s| !s.is_empty()),
            stop_timeout: self.stop_timeout.and_then(|t| u64::try_from(t).ok()),
            // docker's CLI sends `{"Test":null}`-like empty checks for no flag: the image's
            // check applies then, as dockerd merges field by field.
            healthcheck: self.healthcheck,
            restart_policy: h.restart_policy.unwrap_or_default(),
            network_aliases: endpoints.aliases,
            ip: endpoints.ip,
            extra_networks: endpoints.extra,
            ..CreateOptions::default()
        })
    }
}

/// Decodes a create body (docker's container config with its host config) into the
/// engine's options. Public for the fuzz target.
pub fn decode_create(bytes: &[u8], name: Option<String>) -> Result<CreateOptions, ApiError> {
    let body: CreateBody = crate::body::decode_json(bytes)?;
    body.into_options(name)
}

/// `POST /containers/create?name=`: 201 `{"Id","Warnings"}`; a missing image is docker's 404
/// `No such image: X` (the CLI then pulls and retries).
async fn create(call: Call) -> HandlerResult {
    let name = call
        .query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(String::from);
    let bytes = crate::body::collect(call.body, crate::body::JSON_LIMIT).await?;
    let options = decode_create(&bytes, name)?;
    let engine = call.engine.clone();
    let created = blocking(move || Ok(engine.create_container(&options)?)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &serde_json::json!({"Id": created.id, "Warnings": created.warnings}),
    ))
}

/// `POST /containers/{id}/start`: 204, or 304 when it runs already.
async fn start(call: Call) -> HandlerResult {
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    let outcome = blocking(move || {
        engine.start_container(&id).map_err(|e| match e {
            // docker answers a program that cannot run with 400 and the runtime's words,
            // from which the CLI picks 126 or 127.
            kiln_engine::Error::Start { message, .. } => ApiError::bad_request(message),
            e => e.into(),
        })
    })
    .await?;
    status_only(match outcome {
        StartOutcome::Started { .. } => StatusCode::NO_CONTENT,
        StartOutcome::AlreadyRunning => StatusCode::NOT_MODIFIED,
    })
}

fn frame(tty: bool, chunk: &LogChunk) -> Vec<u8> {
    if tty {
        return chunk.bytes.clone();
    }
    let stream = match chunk.stream {
        LogStream::Stdout => StdStream::Stdout,
        LogStream::Stderr => StdStream::Stderr,
    };
    encode_frames(stream, &chunk.bytes)
}

/// `POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1`: a hijacked connection
/// carrying the run's output (stdcopy frames, raw with a terminal) and the client's input;
/// closed when the run ends, which is how the CLI learns of it.
async fn attach(mut call: Call) -> HandlerResult {
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    let want_stdin = call.query.bool("stdin");
    let want_stdout = call.query.bool_or("stdout", !call.query.has("stdout"));
    let want_stderr = call.query.bool_or("stderr", !call.query.has("stderr"));
    // Attach before answering: whatever a start racing the upgrade makes the program write
    // is read from here on.
    let attachment = blocking(move || Ok(engine.attach_container(&id)?)).await?;
    crate::server::hijack(&mut call, move |stream| async move {
        let (mut from_client, mut to_client) = tokio::io::split(stream);
        let tty = attachment.tty;
        let connector = attachment.stdin.clone();
        let mut output = attachment.output;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        let reader = tokio::task::spawn_blocking(move || {
            while let Ok(Some(chunk)) = output.next_chunk() {
                let wanted = match chunk.stream {
                    LogStream::Stdout => want_stdout,
                    LogStream::Stderr => want_stderr,
                };
                if wanted && tx.blocking_send(frame(tty, &chunk)).is_err() {
                    break;
                }
            }
        });
        let input = tokio::spawn(async move {
            if !want_stdin || !connector.open_stdin {
                return;
            }
            let Ok(Ok(Some(conn))) = tokio::task::spawn_blocking(move || connector.connect()).await
            else {
                return;
            };
            if conn.set_nonblocking(true).is_err() {
                return;
            }
            let Ok(mut conn) = tokio::net::UnixStream::from_std(conn) else {
                return;
            };
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            // The client's end of input is the program's (with StdinOnce).
            let _ = conn.shutdown().await;
        });
        while let Some(bytes) = rx.recv().await {
            if to_client.write_all(&bytes).await.is_err() {
                break;
            }
        }
        drop(rx);
        let _ = to_client.flush().await;
        let _ = to_client.shutdown().await;
        input.abort();
        let _ = reader.await;
    })
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`: the headers at
/// once (the CLI sends start only after it has them), `{"StatusCode":N,"Error":null}` when the
/// condition holds. A client that goes away stops the wait.
async fn wait(call: Call) -> HandlerResult {
    let condition = match call.query.get("condition").unwrap_or("not-running") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: \"{other}\""
            )))
        }
    };
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    let mut watch = blocking(move || Ok(engine.watch_exit(&id, condition)?)).await?;
    let (tx, body) = ChannelBody::channel(1);
    tokio::task::spawn_blocking(move || loop {
        if let Some(outcome) = watch.wait(Some(Duration::from_millis(250))) {
            let error = outcome
                .error
                .map(|m| serde_json::json!({ "Message": m }))
                .unwrap_or(serde_json::Value::Null);
            let mut line = serde_json::to_vec(
                &serde_json::json!({"StatusCode": outcome.exit_code, "Error": error}),
            )
            .unwrap_or_default();
            line.push(b'\n');
            let _ = tx.blocking_send(Bytes::from(line));
            return;
        }
        if tx.is_closed() {
            return;
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(body.boxed())
        .unwrap_or_else(|_| Response::new(empty())))
}

/// `POST /containers/{id}/kill?signal=`: 204; 409 when it is not running.
async fn kill(call: Call) -> HandlerResult {
    let signal = parse_signal(call.query.get("signal").unwrap_or("KILL"))?;
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    blocking(move || Ok(engine.kill_container(&id, signal)?)).await?;
    status_only(StatusCode::NO_CONTENT)
}

/// `t` (or 1.42's `timeout`); absent: the container's own stop timeout.
fn stop_timeout(call: &Call) -> Result<Option<Duration>, ApiError> {
    let t = call.query.int("t")?.or(call.query.int("timeout")?);
    Ok(t.map(|t| Duration::from_secs(u64::try_from(t).unwrap_or(0))))
}

/// `POST /containers/{id}/stop?t=`: 204; 304 when it was not running.
async fn stop(call: Call) -> HandlerResult {
    let timeout = stop_timeout(&call)?;
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    let was_running = blocking(move || {
        let running = kiln_engine::containers::is_running(&engine.find_container(&id)?);
        engine.stop_container(&id, timeout)?;
        Ok(running)
    })
    .await?;
    status_only(if was_running {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

/// `POST /containers/{id}/restart?t=`: 204.
async fn restart(call: Call) -> HandlerResult {
    let timeout = stop_timeout(&call)?;
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    blocking(move || Ok(engine.restart_container(&id, timeout)?)).await?;
    status_only(StatusCode::NO_CONTENT)
}

/// A resize request's `h` and `w` (out-of-range values clamped), for containers and execs.
pub(crate) fn tty_size(call: &Call) -> Result<(u16, u16), ApiError> {
    let side = |key: &str| -> Result<u16, ApiError> {
        Ok(call.query.int(key)?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16)
    };
    Ok((side("h")?, side("w")?))
}

/// `POST /containers/{id}/resize?h=&w=`: 200. A container that has just exited is no
/// error: the CLI resizes right after start, racing short programs.
async fn resize(call: Call) -> HandlerResult {
    let (rows, cols) = tty_size(&call)?;
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    blocking(move || match engine.resize_container_tty(&id, rows, cols) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Err(e.into()),
        Err(_) => Ok(()),
    })
    .await?;
    status_only(StatusCode::OK)
}

/// `DELETE /containers/{id}?force=`: 204; 409 for a running one without force.
async fn remove(call: Call) -> HandlerResult {
    let force = call.query.bool("force");
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    blocking(move || Ok(engine.remove_container(&id, force)?)).await?;
    status_only(StatusCode::NO_CONTENT)
}

/// `GET /containers/json?all=&limit=&filters=`.
async fn list(call: Call) -> HandlerResult {
    let filters = call.query.filters()?;
    filters.validate(&[
        "label",
        "name",
        "id",
        "status",
        "ancestor",
        "health",
        "restart-policy",
    ])?;
    let owned =
        |key: &str| -> Vec<String> { filters.get(key).into_iter().map(String::from).collect() };
    let filter = ContainerFilter {
        all: call.query.bool("all"),
        labels: owned("label"),
        names: owned("name"),
        ids: owned("id"),
        statuses: owned("status"),
        ancestors: owned("ancestor"),
        limit: call
            .query
            .int("limit")?
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0),
        healths: owned("health"),
        restart_policies: owned("restart-policy"),
    };
    let engine = call.engine.clone();
    let summaries = blocking(move || Ok(engine.container_summaries(&filter)?)).await?;
    Ok(json_response(StatusCode::OK, &summaries))
}

/// `GET /containers/{id}/json`.
async fn inspect(call: Call) -> HandlerResult {
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    let value = blocking(move || Ok(engine.inspect_container(&id)?)).await?;
    Ok(json_response(StatusCode::OK, &value))
}

/// A `since`/`until` value: unix seconds (with a fraction) or RFC 3339.
pub(crate) fn log_time(text: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty() && *t != "0") else {
        return Ok(None);
    };
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(Some((secs * 1e9) as u64));
    }
    parse_rfc3339_nanos(text)
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(format!("invalid time {text:?}")))
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=&since=&until=&timestamps=`:
/// stdcopy frames (raw bytes for a terminal), streamed as the log is read.
async fn logs(call: Call) -> HandlerResult {
    let tail = match call.query.get("tail") {
        None | Some("all") | Some("") => None,
        Some(n) => Some(
            n.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail {n:?}")))?,
        )
        .filter(|n| *n >= 0)
        .map(|n| n as usize),
    };
    let options = LogsOptions {
        follow: call.query.bool("follow"),
        tail,
        since: log_time(call.query.get("since"))?,
        until: log_time(call.query.get("until"))?,
        timestamps: call.query.bool("timestamps"),
        stdout: call.query.bool("stdout"),
        stderr: call.query.bool("stderr"),
    };
    let engine = call.engine.clone();
    let id = call.param("id").to_string();
    // Not found is an answer of its own, before the stream's headers.
    let check = engine.clone();
    let key = id.clone();
    let tty = blocking(move || Ok(check.inspect_container(&key)?.config.tty)).await?;
    let (tx, body) = ChannelBody::channel(64);
    tokio::task::spawn_blocking(move || {
        let _ = engine.container_logs(&id, options, &mut |chunk| {
            tx.blocking_send(Bytes::from(frame(tty, &chunk)))
                .map_err(|_| std::io::Error::other("the client went away"))
        });
    });
    let kind = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, kind)
        .body(body.boxed())
        .unwrap_or_else(|_| Response::new(empty())))
}

/// `POST /containers/prune`: removes every stopped container.
async fn prune(call: Call) -> HandlerResult {
    let engine = call.engine.clone();
    let removed = blocking(move || Ok(engine.prune_containers()?)).await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"ContainersDeleted": removed, "SpaceReclaimed": 0}),
    ))
}
