//! Crash tests: `kiln import`, `kiln load` and `kiln system prune` are
//! SIGKILLed at random points, 50 times in all; after every kill
//! `kiln system check` must find the store consistent, and the store must
//! keep working (the next command succeeds, names still resolve).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kiln(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.arg("--root").arg(root);
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// xorshift64*: a seeded generator, so a failing run can be replayed with KILN_CRASH_SEED.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

fn payload(dir: &Path, rng: &mut Rng) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    for i in 0..12 {
        let size = 64 * 1024 + (rng.next() % (512 * 1024)) as usize;
        let data: Vec<u8> = (0..size / 8)
            .flat_map(|_| rng.next().to_le_bytes())
            .collect();
        let sub = ["", "sub/", "sub/deeper/"][i % 3];
        std::fs::write(dir.join(format!("{sub}f{i}")), data).unwrap();
    }
    std::os::unix::fs::symlink("f0", dir.join("link")).unwrap();
}

#[test]
fn sigkill_at_random_points_leaves_a_store_check_finds_clean() {
    let seed = std::env::var("KILN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("KILN_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let src = t.path().join("src");
    payload(&src, &mut rng);
    let tar = t.path().join("payload.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    ok(kiln(&root).args(["import"]).arg(&tar).arg("base:1"));
    let archive = t.path().join("docker.tar");
    ok(kiln(&root).args(["save", "-o"]).arg(&archive).arg("base:1"));

    // How long each operation takes when left alone: kills land inside that window.
    let ops = ["import", "load", "prune"];
    let run = |op: &str, n: usize| -> Command {
        let mut c = kiln(&root);
        match op {
            "import" => {
                c.arg("import").arg(&tar).arg(format!("crash:{n}"));
            }
            "load" => {
                c.arg("load").arg("-i").arg(&archive);
            }
            _ => {
                c.args(["system", "prune", "-a", "-f"]);
            }
        }
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    let mut took = Vec::new();
    for op in ops {
        let start = Instant::now();
        assert!(
            run(op, 0).status().unwrap().success(),
            "{op} fails unkilled"
        );
        took.push(start.elapsed().as_micros() as u64 + 1);
    }
    eprintln!("unkilled durations (us): {took:?}");

    let mut killed = 0;
    for i in 1..=50 {
        let which = (rng.next() % 3) as usize;
        if which == 2 {
            // Give prune something to delete: drop a name so its layers become garbage.
            let _ = kiln(&root)
                .args(["rmi", &format!("crash:{}", i - 1)])
                .output();
        }
        let delay = rng.next() % took[which];
        let mut child = run(ops[which], i).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        let out = kiln(&root).args(["system", "check"]).output().unwrap();
        assert!(
            out.status.success(),
            "iteration {i}: {} killed after {delay}us (seed {seed}); check says:\n{}{}",
            ops[which],
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Still usable: the first image resolves and a listing works.
        ok(kiln(&root).args(["image", "inspect", "-f", "{{.Id}}", "base:1"]));
    }
    eprintln!("{killed} of 50 runs were killed mid-way");
    assert!(
        killed >= 10,
        "too few kills landed mid-operation ({killed}); the test would prove little"
    );
    // After all that, a prune leaves no leftovers and the store is still clean.
    ok(kiln(&root).args(["system", "prune", "-a", "-f"]));
    let report = ok(kiln(&root).args(["system", "check"]));
    assert!(
        !report.contains("note:"),
        "leftovers after prune:\n{report}"
    );
    for d in ["ingest", "snapshots"] {
        for e in std::fs::read_dir(root.join(d)).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !n.starts_with("tmp-") && !n.starts_with("blob-"),
                "{d}/{n} left after prune"
            );
        }
    }
}
