//! Start-to-exit of `/bin/true` through the library, as the solver runs a
//! RUN step (no CLI, no state record), interleaved with `runc run` on the
//! same rootfs. Run by `executor/bench/start.sh`; prints one summary line.
//! Usage: start_bench ROOTFS RUNC_BUNDLE WORKDIR RUNS

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use kiln_executor::spec::{ContainerSpec, Rootfs, StdioSpec};

fn p99(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * 0.99).round() as usize]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (rootfs, bundle, work, runs) = (
        PathBuf::from(&a[1]),
        &a[2],
        PathBuf::from(&a[3]),
        a[4].parse::<usize>().unwrap(),
    );
    // KILN_BENCH_OVERLAY=1: an overlay snapshot (what `kiln run` and a RUN
    // step use) instead of the read-only directory runc gets.
    let overlay = std::env::var_os("KILN_BENCH_OVERLAY").is_some();
    let kiln_once = |i: usize| {
        let state = work.join(format!("s{i}"));
        let root = if overlay {
            for d in ["upper", "work"] {
                std::fs::create_dir_all(state.join(d)).unwrap();
            }
            Rootfs::Overlay {
                lowers: vec![rootfs.clone()],
                upper: state.join("upper"),
                work: state.join("work"),
            }
        } else {
            Rootfs::Dir {
                path: rootfs.clone(),
                readonly: true,
            }
        };
        let mut spec = ContainerSpec::new(
            format!("bench{i}"),
            root,
            vec!["/bin/true".into()],
            state.clone(),
        );
        spec.stdout = StdioSpec::Null;
        let t = Instant::now();
        let code = kiln_executor::launch::run(spec).expect("kiln container");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(code, 0);
        let _ = std::fs::remove_dir_all(&state);
        ms
    };
    let runc_once = |i: usize| {
        let t = Instant::now();
        let st = Command::new("runc")
            .args(["--root"])
            .arg(work.join("runcroot"))
            .args(["run", "--bundle", bundle, &format!("lib{i}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("runc");
        assert!(st.success());
        t.elapsed().as_secs_f64() * 1000.0
    };
    for i in 0..5 {
        kiln_once(100_000 + i);
        runc_once(100_000 + i);
    }
    let (mut k, mut r) = (Vec::new(), Vec::new());
    for i in 0..runs {
        k.push(kiln_once(i));
        r.push(runc_once(i));
    }
    let (km, rm) = (median(&mut k), median(&mut r));
    let (k99, r99) = (p99(&mut k), p99(&mut r));
    let what = if overlay {
        "overlay snapshot"
    } else {
        "read-only dir"
    };
    println!(
        "kiln_executor::launch::run (library, {what} rootfs): median {km:.1} ms, p99 {k99:.1} ms"
    );
    println!("runc run (same run, interleaved): median {rm:.1} ms, p99 {r99:.1} ms");
    println!(
        "ratio kiln/runc: median {:.2}, p99 {:.2}",
        km / rm,
        k99 / r99
    );
}
