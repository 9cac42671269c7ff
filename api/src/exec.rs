//! Exec instances: `POST /containers/{id}/exec` makes one, `POST /exec/{id}/start` runs it on a
//! hijacked connection, `GET /exec/{id}/json` tells its exit code, `POST /exec/{id}/resize`
//! sizes its terminal. The program runs through the engine's `exec_in_container`, as `kiln
//! exec`'s does; the instances are the service's own state (docker keeps them in memory
//! too), since only API clients have exec ids.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};

use hyper::{Method, StatusCode};
use kiln_engine::containers::{ExecOptions, ExecStdio};
use kiln_executor::spec::StdioSpec;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::containers::{blocking, tty_size, StringOrList};
use crate::router::{Call, HandlerResult, Router};
use crate::stream::{encode_frames, StdStream};
use crate::{json_response, ApiError};

/// Registers the exec routes.
pub fn routes(router: &mut Router) {
    router
        .route(Method::POST, "/containers/{id}/exec", |c| {
            Box::pin(create(c))
        })
        .route(Method::POST, "/exec/{id}/start", |c| Box::pin(start(c)))
        .route(Method::GET, "/exec/{id}/json", |c| Box::pin(inspect(c)))
        .route(Method::POST, "/exec/{id}/resize", |c| Box::pin(resize(c)));
}

/// One exec instance.
struct Instance {
    container: String,
    options: ExecOptions,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    running: bool,
    started: bool,
    exit_code: Option<i32>,
    pid: i32,
    /// A copy of the terminal's master while the program runs (for resize).
    pty: Option<OwnedFd>,
}

type Instances = Mutex<HashMap<String, Arc<Mutex<Instance>>>>;

fn instances() -> &'static Instances {
    static INSTANCES: OnceLock<Instances> = OnceLock::new();
    INSTANCES.get_or_init(Default::default)
}

fn instance(id: &str) -> Result<Arc<Mutex<Instance>>, ApiError> {
    instances()
        .lock()
        .map_err(|_| ApiError::internal("the exec table's lock was poisoned"))?
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    cmd: Option<StringOrList>,
    env: Option<Vec<String>>,
    user: String,
    working_dir: String,
    tty: bool,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
}

/// `POST /containers/{id}/exec`: 201 `{"Id"}`; 409 when the container is not running.
async fn create(call: Call) -> HandlerResult {
    let key = call.param("id").to_string();
    let body: CreateBody = crate::body::json(call.body).await?;
    let cmd = body.cmd.map(StringOrList::into_vec).unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let engine = call.engine.clone();
    let rec = blocking(move || Ok(engine.find_container(&key)?)).await?;
    if !kiln_engine::containers::is_running(&rec) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Container {} is not running", rec.id),
        ));
    }
    let id = kiln_executor::state::new_id();
    let inst = Instance {
        container: rec.id,
        options: ExecOptions {
            cmd,
            env: body.env.unwrap_or_default(),
            user: Some(body.user).filter(|u| !u.is_empty()),
            workdir: Some(body.working_dir).filter(|w| !w.is_empty()),
            tty: body.tty,
        },
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        running: false,
        started: false,
        exit_code: None,
        pid: 0,
        pty: None,
    };
    instances()
        .lock()
        .map_err(|_| ApiError::internal("the exec table's lock was poisoned"))?
        .insert(id.clone(), Arc::new(Mutex::new(inst)));
    Ok(json_response(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": id }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ApiError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ApiError::internal(format!("creating a pipe: {e}")))
}

/// What the exec's thread hands the connection: output chunks, and where input goes.
struct Streams {
    output: tokio::sync::mpsc::Receiver<Vec<u8>>,
    input: Option<std::sync::mpsc::Sender<Vec<u8>>>,
}

/// Starts the program on a thread of its own (the executor ties the process's life to the
/// thread that started it), which pumps its output and input and records its exit.
fn launch(
    engine: Arc<kiln_engine::Engine>,
    inst: Arc<Mutex<Instance>>,
) -> Result<Streams, ApiError> {
    let (container, options, attach_stdin, attach_stdout, attach_stderr) = {
        let mut i = inst
            .lock()
            .map_err(|_| ApiError::internal("an exec's lock was poisoned"))?;
        if i.started {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the exec instance has been started already",
            ));
        }
        i.started = true;
        i.running = true;
        (
            i.container.clone(),
            i.options.clone(),
            i.attach_stdin,
            i.attach_stdout,
            i.attach_stderr,
        )
    };
    let tty = options.tty;
    let (out_tx, out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), ApiError>>();
    std::thread::spawn(move || {
        let mut readers: Vec<(StdStream, std::fs::File)> = Vec::new();
        let mut stdin_writer: Option<std::fs::File> = None;
        let stdio = if tty {
            ExecStdio {
                stdin: StdioSpec::Null,
                stdout: StdioSpec::Null,
                stderr: StdioSpec::Null,
            }
        } else {
            let mut stdio = ExecStdio {
                stdin: StdioSpec::Null,
                stdout: StdioSpec::Null,
                stderr: StdioSpec::Null,
            };
            for (stream, wanted) in [
                (StdStream::Stdout, attach_stdout),
                (StdStream::Stderr, attach_stderr),
            ] {
                if !wanted {
                    continue;
                }
                let Ok((r, w)) = pipe() else { continue };
                readers.push((stream, std::fs::File::from(r)));
                match stream {
                    StdStream::Stdout => stdio.stdout = StdioSpec::Fd(w),
                    _ => stdio.stderr = StdioSpec::Fd(w),
                }
            }
            if attach_stdin {
                if let Ok((r, w)) = pipe() {
                    stdin_writer = Some(std::fs::File::from(w));
                    stdio.stdin = StdioSpec::Fd(r);
                }
            }
            stdio
        };
        let running = match engine.exec_in_container(&container, &options, stdio) {
            Ok(r) => r,
            Err(e) => {
                let code = match &e {
                    kiln_engine::Error::Start { code, .. } => *code,
                    _ => 126,
                };
                if let Ok(mut i) = inst.lock() {
                    i.running = false;
                    i.exit_code = Some(code);
                }
                let _ = ready_tx.send(Err(ApiError::from(e)));
                return;
            }
        };
        if let Some(master) = running.pty_master.as_ref() {
            if let Ok(dup) = master.try_clone() {
                readers.push((StdStream::Stdout, std::fs::File::from(dup)));
            }
            if attach_stdin {
                stdin_writer = master.try_clone().ok().map(std::fs::File::from);
            }
        }
        if let Ok(mut i) = inst.lock() {
            i.pid = running.pid;
            i.pty = running.pty_master.as_ref().and_then(|m| m.try_clone().ok());
        }
        let _ = ready_tx.send(Ok(()));
        let mut pumps = Vec::new();
        for (stream, mut from) in readers {
            let out_tx = out_tx.clone();
            pumps.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let bytes = if tty {
                        buf[..n].to_vec()
                    } else {
                        encode_frames(stream, &buf[..n])
                    };
                    if out_tx.blocking_send(bytes).is_err() {
                        break;
                    }
                }
            }));
        }
        // The connection ends when the last sender goes: this one goes once the exit code is
        // recorded, so a client that inspects on EOF (the CLI does) reads it.
        let keep_open = out_tx;
        if let Some(mut to) = stdin_writer {
            std::thread::spawn(move || {
                while let Ok(bytes) = in_rx.recv() {
                    if to.write_all(&bytes).is_err() {
                        break;
                    }
                }
                // Dropping the writer is the program's end of input.
            });
        }
        let code = running.wait().unwrap_or(126);
        for p in pumps {
            let _ = p.join();
        }
        if let Ok(mut i) = inst.lock() {
            i.running = false;
            i.pty = None;
            i.exit_code = Some(code);
        }
        drop(keep_open);
    });
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Streams {
            output: out_rx,
            input: attach_stdin.then_some(in_tx),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::internal("the exec's thread died")),
    }
}

/// `POST /exec/{id}/start`: `{"Detach":true}` answers 200 at once; otherwise the connection
/// is hijacked (101 when asked to upgrade) and carries the program's output and input until
/// it exits.
async fn start(mut call: Call) -> HandlerResult {
    let inst = instance(call.param("id"))?;
    let upgrade = call.header("upgrade").is_some();
    let body: StartBody = {
        let bytes = crate::body::collect(&mut call.body, 1 << 20).await?;
        crate::body::decode_json_or_default(&bytes)?
    };
    let engine = call.engine.clone();
    if body.detach {
        drop(blocking(move || launch(engine, inst)).await?);
        return Ok(json_response(StatusCode::OK, &serde_json::json!({})));
    }
    if !upgrade {
        return Err(ApiError::bad_request(
            "exec start without Detach must upgrade the connection (Upgrade: tcp)",
        ));
    }
    if inst.lock().map(|i| i.started).unwrap_or(true) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the exec instance has been started already",
        ));
    }
    // The program starts once the connection is upgraded, as with dockerd: output written
    // before the client has read the 101 would be swallowed by clients that buffer the
    // response's head (the Python SDK's exec_run does).
    crate::server::hijack(&mut call, move |stream| async move {
        let streams = match blocking(move || launch(engine, inst)).await {
            Ok(s) => s,
            Err(e) => {
                let mut stream = stream;
                let _ = stream
                    .write_all(format!("{}\n", e.message).as_bytes())
                    .await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        let Streams { mut output, input } = streams;
        let (mut from_client, mut to_client) = tokio::io::split(stream);
        let feeder = tokio::spawn(async move {
            let Some(input) = input else { return };
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if input.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        while let Some(bytes) = output.recv().await {
            if to_client.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_client.flush().await;
        let _ = to_client.shutdown().await;
        feeder.abort();
    })
}

/// `GET /exec/{id}/json`.
async fn inspect(call: Call) -> HandlerResult {
    let id = call.param("id").to_string();
    let inst = instance(&id)?;
    let i = inst
        .lock()
        .map_err(|_| ApiError::internal("an exec's lock was poisoned"))?;
    let value = serde_json::json!({
        "ID": id,
        "Running": i.running,
        "ExitCode": i.exit_code,
        "ProcessConfig": {
            "tty": i.options.tty,
            "entrypoint": i.options.cmd.first(),
            "arguments": i.options.cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": false,
            "user": i.options.user.clone().unwrap_or_default(),
        },
        "OpenStdin": i.attach_stdin,
        "OpenStderr": i.attach_stderr,
        "OpenStdout": i.attach_stdout,
        "CanRemove": false,
        "ContainerID": i.container,
        "DetachKeys": "",
        "Pid": i.pid,
    });
    Ok(json_response(StatusCode::OK, &value))
}

/// `POST /exec/{id}/resize?h=&w=`.
async fn resize(call: Call) -> HandlerResult {
    let (rows, cols) = tty_size(&call)?;
    let inst = instance(call.param("id"))?;
    if let Ok(i) = inst.lock() {
        if let Some(fd) = &i.pty {
            kiln_executor::pty::set_size(fd.as_raw_fd(), rows, cols);
        }
    }
    Ok(json_response(StatusCode::OK, &serde_json::json!({})))
}
