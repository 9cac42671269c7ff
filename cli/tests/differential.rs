//! Differential tests against buildah: every case in `testdata/build-diff/`
//! is built by kiln and by `buildah bud` from the same busybox base image
//! (one layer, loaded into both stores), both images are unpacked by umoci,
//! and the two root filesystems are compared file by file (type, mode with
//! setuid/sticky bits, owner, content, symlink target, hardlink grouping),
//! together with the image config and the layer count. kiln's `-o type=local`
//! output of the same build (from cache) must hold exactly its image's files.
//!
//! A case is a directory holding a Dockerfile and its (tiny) context. Header
//! comments in the Dockerfile tell the harness what else to do; both builders
//! read them as plain comments:
//!
//! - `# diff-args: ARG...` extra build flags given to both builders
//!   (`--build-arg`, `--target`, `--secret id=ID,src=FILE`; paths are relative
//!   to the case directory). The content of every secret file must appear in
//!   neither root filesystem.
//! - `# diff-before: FILE TAG` builds FILE (in the case directory) as TAG with
//!   each builder first, so the case can say `FROM TAG` (ONBUILD).
//! - `# diff-buildah-file: FILE` gives buildah FILE instead of the Dockerfile:
//!   the same build spelled without a feature Debian 12's buildah 1.28 lacks
//!   (heredocs, `COPY --link`), so kiln's result of the feature is still
//!   compared with what docker semantics say it must equal (the layer count
//!   is not compared then).
//!
//! Differences that are by design (buildah differs from docker/BuildKit, and
//! kiln follows BuildKit) are listed with a reason each in
//! `testdata/build-diff/allowlist.txt`; an entry no case uses fails the test,
//! so the list cannot go stale.
//!
//! Without buildah or umoci (or not as root) the test says so loudly and
//! passes; scripts/deps.sh installs both, so CI runs it for real.
//! `KILN_DIFF_CASES=substring` runs only the matching cases;
//! `KILN_DIFF_JOBS=N` sets how many cases run at once (default 4: a case
//! mostly waits on runc, commits and fsync, so 4 keep 2 cores busy).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The image name both stores hold the shared base image under.
const BASE: &str = "docker.io/library/busybox:latest";

/// The config fields compared (docker's names; buildah's docker-format config
/// and kiln's config both carry Healthcheck, Shell and OnBuild).
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Entrypoint",
    "Cmd",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/build-diff")
}

#[test]
fn kiln_and_buildah_build_the_same_images() {
    if let Some(why) = missing_tools() {
        // Straight to stderr, past the test harness's capture: a skip must
        // show in a passing run.
        let _ = writeln!(
            std::io::stderr(),
            "\n=====================================================================\n\
             SKIPPED: the differential test against buildah did not run: {why}.\n\
             Install the tools with scripts/deps.sh and run as root.\n\
             =====================================================================\n"
        );
        return;
    }
    let started = Instant::now();
    let lab = Lab::new();
    let allow = Allowlist::load(&cases_dir().join("allowlist.txt"));
    let filter = std::env::var("KILN_DIFF_CASES").unwrap_or_default();
    let cases: Vec<Case> = list_cases()
        .into_iter()
        .filter(|c| c.name.contains(&filter))
        .collect();
    assert!(!cases.is_empty(), "no case matches {filter:?}");
    if filter.is_empty() {
        assert!(
            cases.len() >= 40,
            "only {} cases in testdata/build-diff",
            cases.len()
        );
    }
    for e in &allow.entries {
        assert!(
            e.case == "*" || list_cases().iter().any(|c| glob(&e.case, &c.name)),
            "allowlist.txt:{}: no case matches {:?}",
            e.line,
            e.case
        );
    }

    let jobs = std::env::var("KILN_DIFF_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(4usize)
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, CaseResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let r = lab.run_case(case);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);

    let mut report = String::new();
    let (mut pass, mut allowed_cases, mut failed) = (0, 0, Vec::new());
    for (i, r) in &results {
        let case = &cases[*i];
        let mut bad = Vec::new();
        let mut allowed = Vec::new();
        match &r.outcome {
            Err(e) => bad.push(format!("  {e}")),
            Ok(diffs) => {
                for d in diffs {
                    match allow.find(&case.name, &d.what) {
                        // Entries for every case (buildah's mount stubs) are
                        // counted once at the end, not shown per case.
                        Some(e) if e.case == "*" => {}
                        Some(e) => allowed.push(format!(
                            "  {}: {} [allowed: {}]",
                            d.what, d.detail, e.reason
                        )),
                        None => bad.push(format!("  {}: {}", d.what, d.detail)),
                    }
                }
            }
        }
        let verdict = if !bad.is_empty() {
            failed.push(case.name.clone());
            "MISMATCH"
        } else if !allowed.is_empty() {
            allowed_cases += 1;
            "same but for allowlisted differences"
        } else {
            pass += 1;
            "same"
        };
        let _ = writeln!(
            report,
            "{}: {verdict} (kiln {:.1}s, buildah {:.1}s)",
            case.name,
            r.kiln_time.as_secs_f64(),
            r.buildah_time.as_secs_f64()
        );
        for l in bad.iter().chain(&allowed) {
            let _ = writeln!(report, "{l}");
        }
    }
    let unused: Vec<String> = if filter.is_empty() {
        allow
            .entries
            .iter()
            .filter(|e| !e.used.load(Ordering::Relaxed))
            .map(|e| {
                format!(
                    "allowlist.txt:{}: {} {} is never used",
                    e.line, e.case, e.what
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let _ = writeln!(
        report,
        "{} cases: {pass} same, {allowed_cases} same but for allowlisted differences, {} mismatched \
         (buildah's RUN mount stubs, allowed in every case: {}); {:.0}s",
        results.len(),
        failed.len(),
        allow
            .entries
            .iter()
            .filter(|e| e.case == "*")
            .map(|e| e.what.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    );
    eprintln!("\n{report}");
    // The summary shows in a passing run too (past the harness's capture).
    if let Some(summary) = report.lines().last() {
        let _ = writeln!(std::io::stderr(), "differential: {summary}");
    }
    assert!(
        failed.is_empty() && unused.is_empty(),
        "kiln and buildah differ in {failed:?}{}{}",
        if unused.is_empty() { "" } else { "\n" },
        unused.join("\n")
    );
}

/// Why the test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    for (tool, arg) in [
        ("buildah", "--version"),
        ("umoci", "--version"),
        ("runc", "--version"),
    ] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// One case directory.
struct Case {
    name: String,
    dir: PathBuf,
    /// Extra build flags for both builders.
    args: Vec<String>,
    /// Images to build first: (Dockerfile in the case dir, tag).
    before: Vec<(String, String)>,
    /// The Dockerfile buildah builds (`Dockerfile` unless the header says).
    buildah_file: String,
}

fn list_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for e in std::fs::read_dir(cases_dir()).unwrap() {
        let dir = e.unwrap().path();
        if !dir.join("Dockerfile").is_file() {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let (mut args, mut before) = (Vec::new(), Vec::new());
        let mut buildah_file = "Dockerfile".to_string();
        for line in text.lines() {
            if let Some(a) = line.strip_prefix("# diff-args:") {
                args.extend(a.split_whitespace().map(String::from));
            } else if let Some(b) = line.strip_prefix("# diff-before:") {
                let w: Vec<&str> = b.split_whitespace().collect();
                assert_eq!(w.len(), 2, "{}: diff-before: FILE TAG", dir.display());
                before.push((w[0].to_string(), w[1].to_string()));
            } else if let Some(f) = line.strip_prefix("# diff-buildah-file:") {
                buildah_file = f.trim().to_string();
            }
        }
        cases.push(Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir,
            args,
            before,
            buildah_file,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Secret files named by `--secret id=..,src=FILE` among the args.
fn secret_files(case: &Case) -> Vec<PathBuf> {
    case.args
        .iter()
        .filter_map(|a| {
            a.split(',').find_map(|kv| {
                kv.strip_prefix("src=")
                    .or_else(|| kv.strip_prefix("source="))
            })
        })
        .map(|p| case.dir.join(p))
        .collect()
}

/// One difference between the two images.
struct Diff {
    /// A path in the rootfs (`/etc/passwd`), `config.Field`, or `layers`.
    what: String,
    detail: String,
}

struct CaseResult {
    outcome: Result<Vec<Diff>, String>,
    kiln_time: Duration,
    buildah_time: Duration,
}

/// The two stores, holding the same base image, and a scratch directory.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::Builder::new()
                .prefix("kiln-diff")
                .tempdir()
                .unwrap(),
        };
        let d = lab.dir.path();
        std::fs::write(d.join("containers.conf"), "[engine]\nruntime = \"runc\"\n").unwrap();
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\nshort-name-mode = \"permissive\"\n",
        )
        .unwrap();
        let rootfs = d.join("busybox-rootfs");
        common::make_rootfs(&rootfs);
        must(lab.kiln().args(["import"]).arg(&rootfs).arg(BASE));
        let archive = d.join("busybox.tar");
        must(
            lab.kiln()
                .args(["save", "--format", "docker", "-o"])
                .arg(&archive)
                .arg(BASE),
        );
        let mut pull = lab.buildah();
        pull.args(["pull", "--quiet"])
            .arg(format!("docker-archive:{}", archive.display()));
        let id = String::from_utf8(must(&mut pull).stdout).unwrap();
        must(lab.buildah().args(["tag", id.trim(), BASE]));
        lab
    }

    fn kiln(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.arg("--root").arg(self.dir.path().join("kiln"));
        c
    }

    fn buildah(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("buildah");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .arg("--root")
            .arg(d.join("buildah/root"))
            .arg("--runroot")
            .arg(d.join("buildah/run"))
            .args(["--storage-driver", "overlay"]);
        c
    }

    fn kiln_build(&self, case: &Case, dir: &Path, file: &str, tag: &str) -> Result<(), String> {
        let mut c = self.kiln();
        c.current_dir(dir)
            .args([
                "build",
                "--progress=plain",
                "--network",
                "none",
                "-f",
                file,
                "-t",
                tag,
            ])
            .args(&case.args)
            .arg(".");
        run(&mut c)
            .map(drop)
            .map_err(|e| format!("kiln build failed: {e}"))
    }

    fn buildah_build(&self, case: &Case, dir: &Path, file: &str, tag: &str) -> Result<(), String> {
        let mut c = self.buildah();
        c.current_dir(dir)
            .args([
                "bud",
                "--layers",
                "--pull=false",
                "--jobs",
                "1",
                "--isolation",
                "oci",
            ])
            .args([
                "--runtime",
                "/usr/sbin/runc",
                "--network",
                "none",
                "--format",
                "docker",
            ])
            .args(["-f", file, "-t", tag])
            .args(&case.args)
            .arg(".");
        run(&mut c)
            .map(drop)
            .map_err(|e| format!("buildah bud failed: {e}"))
    }

    fn run_case(&self, case: &Case) -> CaseResult {
        let work = self.dir.path().join("cases").join(&case.name);
        std::fs::create_dir_all(&work).unwrap();
        // Each builder gets its own copy of the case: buildah 1.28 writes
        // what a RUN puts in a `rw` bind mount back into the context
        // (FACTS.md), which must reach neither kiln nor the checkout.
        let copy = |name: &str| -> Result<PathBuf, String> {
            let to = work.join(name);
            run(Command::new("cp").arg("-a").arg(&case.dir).arg(&to))?;
            Ok(to)
        };
        let (kiln_dir, buildah_dir) = match (copy("ctx-kiln"), copy("ctx-buildah")) {
            (Ok(k), Ok(b)) => (k, b),
            (Err(e), _) | (_, Err(e)) => {
                return CaseResult {
                    outcome: Err(e),
                    kiln_time: Duration::ZERO,
                    buildah_time: Duration::ZERO,
                }
            }
        };
        let tag = format!("diff-{}", case.name);
        let t = Instant::now();
        let kiln = (|| {
            for (file, before) in &case.before {
                self.kiln_build(case, &kiln_dir, file, before)?;
            }
            self.kiln_build(case, &kiln_dir, "Dockerfile", &tag)?;
            let mut image = self.kiln_image(&tag, &work.join("kiln"))?;
            // The same build again, from cache, to a directory.
            let local = work.join("kiln-local");
            let mut c = self.kiln();
            c.current_dir(&kiln_dir)
                .args(["build", "--progress=plain", "--network", "none"])
                .args(&case.args)
                .arg("-o")
                .arg(format!("type=local,dest={}", local.display()))
                .arg(".");
            image.local = Some(match run(&mut c) {
                Ok(_) => Ok(local),
                Err(e) => Err(e.lines().last().unwrap_or_default().trim().to_string()),
            });
            Ok(image)
        })();
        let kiln_time = t.elapsed();
        let t = Instant::now();
        let buildah = (|| {
            for (file, before) in &case.before {
                self.buildah_build(case, &buildah_dir, file, before)?;
            }
            self.buildah_build(case, &buildah_dir, &case.buildah_file, &tag)?;
            self.buildah_image(&tag, &work.join("buildah"))
        })();
        let buildah_time = t.elapsed();
        let outcome = match (kiln, buildah) {
            (Ok(k), Ok(b)) => Ok(compare(case, &k, &b)),
            (Err(k), Ok(_)) => Err(k),
            (Ok(_), Err(b)) => Err(b),
            (Err(k), Err(b)) => Err(format!("{k}\n  {b}")),
        };
        CaseResult {
            outcome,
            kiln_time,
            buildah_time,
        }
    }

    /// Saves kiln's image as an OCI layout and unpacks it with umoci.
    fn kiln_image(&self, tag: &str, dir: &Path) -> Result<Image, String> {
        let tar = dir.with_extension("tar");
        std::fs::create_dir_all(dir.join("oci")).unwrap();
        run(self
            .kiln()
            .args(["save", "--format", "oci", "-o"])
            .arg(&tar)
            .arg(tag))?;
        run(Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.join("oci")))?;
        let layout = read_layout(&dir.join("oci"))?;
        unpack(&dir.join("oci"), &dir.join("bundle"))?;
        Ok(Image {
            rootfs: dir.join("bundle/rootfs"),
            config: layout["config"].clone(),
            layers: layout["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len),
            history: layout["history"].as_array().cloned().unwrap_or_default(),
            local: None,
        })
    }

    /// Pushes buildah's image to an OCI layout, unpacks it with umoci, and
    /// reads its docker-format config (the OCI one has no Healthcheck etc.).
    fn buildah_image(&self, tag: &str, dir: &Path) -> Result<Image, String> {
        let oci = dir.join("oci");
        std::fs::create_dir_all(dir).unwrap();
        run(self
            .buildah()
            .args(["push", "--quiet", tag])
            .arg(format!("oci:{}:latest", oci.display())))?;
        unpack(&oci, &dir.join("bundle"))?;
        let out = run(self.buildah().args(["inspect", "--type", "image", tag]))?;
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let docker = &v["Docker"];
        Ok(Image {
            rootfs: dir.join("bundle/rootfs"),
            config: docker["config"].clone(),
            layers: docker["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len),
            history: docker["history"].as_array().cloned().unwrap_or_default(),
            local: None,
        })
    }
}

impl Drop for Lab {
    /// Removes buildah's containers, then unmounts what its store left
    /// mounted under the lab, so the directory can be deleted.
    fn drop(&mut self) {
        let _ = self.buildah().args(["rm", "--all"]).output();
        let prefix = format!("{}/", self.dir.path().display());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        // Deepest first; the store's own bind mount of its overlay dir last.
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            let _ = Command::new("umount").arg("-l").arg(m).output();
        }
    }
}

/// What is compared of one image.
struct Image {
    rootfs: PathBuf,
    config: Value,
    layers: usize,
    history: Vec<Value>,
    /// kiln only: the same build written by `-o type=local` (or why not).
    local: Option<Result<PathBuf, String>>,
}

/// The image config JSON of the only image in an OCI layout.
fn read_layout(dir: &Path) -> Result<Value, String> {
    let blob = |digest: &Value| -> Result<Value, String> {
        let d = digest.as_str().ok_or("no digest")?;
        let hex = d.strip_prefix("sha256:").ok_or("not sha256")?;
        let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let manifest = blob(&index["manifests"][0]["digest"])?;
    blob(&manifest["config"]["digest"])
}

fn unpack(layout: &Path, bundle: &Path) -> Result<(), String> {
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(bundle))
    .map(drop)
}

/// Runs a command; its output, or an error with its stderr.
fn run(c: &mut Command) -> Result<Output, String> {
    let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "{:?} exited {}:\n    {}",
            c.get_program(),
            out.status,
            tail.join("\n    ")
        ))
    }
}

fn must(c: &mut Command) -> Output {
    run(c).unwrap_or_else(|e| panic!("{e}"))
}

/// All the differences between kiln's image and buildah's.
fn compare(case: &Case, kiln: &Image, buildah: &Image) -> Vec<Diff> {
    let mut diffs = compare_trees(&kiln.rootfs, &buildah.rootfs);
    // kiln's directory output must hold exactly its image's files.
    match &kiln.local {
        Some(Ok(local)) => {
            for d in compare_trees(&kiln.rootfs, local) {
                diffs.push(Diff {
                    what: format!("local-output:{}", d.what),
                    detail: d.detail.replace("buildah=", "kiln -o type=local="),
                });
            }
        }
        Some(Err(e)) => diffs.push(Diff {
            what: "local-output".into(),
            detail: format!("kiln build -o type=local failed: {e}"),
        }),
        None => {}
    }
    diffs.extend(compare_config(&kiln.config, &buildah.config));
    // kiln, like BuildKit, makes a layer for WORKDIR; buildah makes none.
    let workdir_layers = kiln
        .history
        .iter()
        .filter(|h| {
            !h["empty_layer"].as_bool().unwrap_or(false)
                && h["created_by"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("WORKDIR "))
        })
        .count();
    // A buildah-only Dockerfile spells the build with other steps, so its
    // layer count says nothing.
    if case.buildah_file == "Dockerfile" && kiln.layers - workdir_layers != buildah.layers {
        diffs.push(Diff {
            what: "layers".into(),
            detail: format!(
                "kiln={} ({} of them WORKDIR), buildah={}",
                kiln.layers, workdir_layers, buildah.layers
            ),
        });
    }
    for secret in secret_files(case) {
        let text = std::fs::read(&secret).unwrap();
        for (who, img) in [("kiln", kiln), ("buildah", buildah)] {
            if let Some(p) = find_bytes(&img.rootfs, &text) {
                diffs.push(Diff {
                    what: "secret".into(),
                    detail: format!("{who}'s rootfs holds the secret in {p}"),
                });
            }
        }
    }
    diffs
}

/// One entry of a root filesystem.
#[derive(PartialEq)]
struct Entry {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    inode: (u64, u64),
    nlink: u64,
}

impl Entry {
    fn describe(&self) -> String {
        match self.kind.as_str() {
            k if k.starts_with("symlink") => format!("{k} {}:{}", self.uid, self.gid),
            "file" => format!(
                "file {:04o} {}:{} {}B",
                self.mode, self.uid, self.gid, self.size
            ),
            k => format!("{k} {:04o} {}:{}", self.mode, self.uid, self.gid),
        }
    }
}

fn walk(root: &Path) -> BTreeMap<String, Entry> {
    fn go(root: &Path, rel: &str, out: &mut BTreeMap<String, Entry>) {
        let path = if rel == "/" {
            root.to_path_buf()
        } else {
            root.join(&rel[1..])
        };
        let m = std::fs::symlink_metadata(&path).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!(
                "symlink -> {}",
                std::fs::read_link(&path).unwrap().display()
            )
        } else if ft.is_file() {
            "file".into()
        } else if ft.is_char_device() {
            format!("char {}", m.rdev())
        } else if ft.is_block_device() {
            format!("block {}", m.rdev())
        } else if ft.is_fifo() {
            "fifo".into()
        } else {
            "socket".into()
        };
        out.insert(
            rel.to_string(),
            Entry {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: if ft.is_file() { m.len() } else { 0 },
                inode: (m.dev(), m.ino()),
                nlink: m.nlink(),
            },
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                let name = e.unwrap().file_name();
                let child = if rel == "/" {
                    format!("/{}", name.to_string_lossy())
                } else {
                    format!("{rel}/{}", name.to_string_lossy())
                };
                go(root, &child, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, "/", &mut out);
    out
}

/// For each hardlinked file, the other paths sharing its inode.
fn link_groups(tree: &BTreeMap<String, Entry>) -> HashMap<String, BTreeSet<String>> {
    let mut by_inode: HashMap<(u64, u64), BTreeSet<String>> = HashMap::new();
    for (p, e) in tree {
        if e.kind == "file" && e.nlink > 1 {
            by_inode.entry(e.inode).or_default().insert(p.clone());
        }
    }
    let mut out = HashMap::new();
    for group in by_inode.values() {
        for p in group {
            let mut others = group.clone();
            others.remove(p);
            out.insert(p.clone(), others);
        }
    }
    out
}

fn compare_trees(kiln_root: &Path, buildah_root: &Path) -> Vec<Diff> {
    let k = walk(kiln_root);
    let b = walk(buildah_root);
    let (kl, bl) = (link_groups(&k), link_groups(&b));
    let mut diffs = Vec::new();
    // A directory only one side has is one difference, not one per entry.
    let mut missing_dirs: Vec<String> = Vec::new();
    let paths: BTreeSet<&String> = k.keys().chain(b.keys()).collect();
    for p in paths {
        if missing_dirs.iter().any(|d| p.starts_with(d.as_str())) {
            continue;
        }
        let detail = match (k.get(p), b.get(p)) {
            (Some(ke), Some(be)) => {
                let mut d = Vec::new();
                if ke.kind != be.kind
                    || (ke.mode != be.mode && !ke.kind.starts_with("symlink"))
                    || ke.uid != be.uid
                    || ke.gid != be.gid
                    || ke.size != be.size
                {
                    d.push(format!("kiln={}, buildah={}", ke.describe(), be.describe()));
                } else if ke.kind == "file" {
                    let kb = std::fs::read(kiln_root.join(&p[1..])).unwrap();
                    let bb = std::fs::read(buildah_root.join(&p[1..])).unwrap();
                    if kb != bb {
                        d.push(format!(
                            "content differs: kiln={}, buildah={}",
                            preview(&kb),
                            preview(&bb)
                        ));
                    }
                }
                let none = BTreeSet::new();
                let (kg, bg) = (kl.get(p).unwrap_or(&none), bl.get(p).unwrap_or(&none));
                if kg != bg {
                    d.push(format!("hardlinked with: kiln={kg:?}, buildah={bg:?}"));
                }
                if d.is_empty() {
                    continue;
                }
                d.join("; ")
            }
            (ke, be) => {
                let (e, tree) = if let Some(e) = ke {
                    (e, &k)
                } else {
                    (be.unwrap(), &b)
                };
                let mut desc = e.describe();
                if e.kind == "dir" {
                    let prefix = format!("{p}/");
                    let below = tree.keys().filter(|q| q.starts_with(&prefix)).count();
                    if below > 0 {
                        desc.push_str(&format!(" (+{below} entries below)"));
                    }
                    missing_dirs.push(prefix);
                }
                if ke.is_some() {
                    format!("kiln={desc}, buildah=absent")
                } else {
                    format!("kiln=absent, buildah={desc}")
                }
            }
        };
        diffs.push(Diff {
            what: p.clone(),
            detail,
        });
    }
    diffs
}

fn preview(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.len() <= 120 => format!("{s:?}"),
        _ => format!("{} bytes", bytes.len()),
    }
}

/// The first regular file under `root` whose content holds `needle`.
fn find_bytes(root: &Path, needle: &[u8]) -> Option<String> {
    let needle = String::from_utf8_lossy(needle).trim().as_bytes().to_vec();
    walk(root)
        .iter()
        .filter(|(_, e)| e.kind == "file")
        .find(|(p, _)| {
            std::fs::read(root.join(&p[1..]))
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_slice()))
        })
        .map(|(p, _)| p.clone())
}

/// A config field, with "unset" spelled one way: empty lists, maps and
/// strings are null; buildah's own version label is dropped.
fn normalized(config: &Value, field: &str) -> Value {
    let mut v = config.get(field).cloned().unwrap_or(Value::Null);
    if field == "Labels" {
        if let Some(m) = v.as_object_mut() {
            m.remove("io.buildah.version");
        }
    }
    let empty = match &v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    if empty {
        Value::Null
    } else {
        v
    }
}

fn compare_config(kiln: &Value, buildah: &Value) -> Vec<Diff> {
    CONFIG_FIELDS
        .iter()
        .filter_map(|f| {
            let (k, b) = (normalized(kiln, f), normalized(buildah, f));
            (k != b).then(|| Diff {
                what: format!("config.{f}"),
                detail: format!("kiln={k}, buildah={b}"),
            })
        })
        .collect()
}

/// `testdata/build-diff/allowlist.txt`: `CASE WHAT REASON...` per line.
struct Allowlist {
    entries: Vec<AllowEntry>,
}

struct AllowEntry {
    line: usize,
    case: String,
    what: String,
    reason: String,
    used: AtomicBool,
}

impl Allowlist {
    fn load(path: &Path) -> Allowlist {
        let text = std::fs::read_to_string(path).unwrap();
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut w = line.split_whitespace();
            let (case, what) = (w.next(), w.next());
            let reason = w.collect::<Vec<_>>().join(" ");
            let reason = (!reason.is_empty()).then_some(reason.as_str());
            let (Some(case), Some(what), Some(reason)) = (case, what, reason) else {
                panic!("allowlist.txt:{}: want `CASE WHAT REASON`", i + 1);
            };
            entries.push(AllowEntry {
                line: i + 1,
                case: case.into(),
                what: what.into(),
                reason: reason.into(),
                used: AtomicBool::new(false),
            });
        }
        Allowlist { entries }
    }

    fn find(&self, case: &str, what: &str) -> Option<&AllowEntry> {
        let e = self
            .entries
            .iter()
            .find(|e| glob(&e.case, case) && glob(&e.what, what))?;
        e.used.store(true, Ordering::Relaxed);
        Some(e)
    }
}

/// `*` alone matches anything; a trailing `*` matches any suffix.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pattern == s,
    }
}
