//! The store's commands seen from outside: docker's table headers, `--format
//! json`, exit codes, and refusals a docker user expects.

use std::path::Path;
use std::process::Command;

fn kiln(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.arg("--root").arg(root);
    c
}

fn run(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn images_history_tag_rmi_inspect_like_docker() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/x"), vec![1u8; 5000]).unwrap();
    let (ok, out, err) = run(kiln(&root).arg("import").arg(&src).arg("app:1"));
    assert!(ok, "{err}");
    let id = out.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");

    let (ok, out, _) = run(kiln(&root).arg("images"));
    assert!(ok);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("app ") && row.contains(" 1 ") && row.contains(&id[7..19]),
        "{row}"
    );

    let (ok, out, _) = run(kiln(&root).args(["images", "--format", "json"]));
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["Repository"], "app");
    assert_eq!(v["ID"], &id[7..19]);

    let (ok, out, _) = run(kiln(&root).args(["history", "app:1"]));
    assert!(ok);
    assert!(
        out.starts_with("IMAGE") && out.contains("kiln import"),
        "{out}"
    );

    assert!(run(kiln(&root).args(["tag", "app:1", "app:2"])).0);
    let (ok, _, err) = run(kiln(&root).args(["rmi", &id[7..19]]));
    assert!(!ok && err.contains("must be forced"), "{err}");
    let (ok, out, _) = run(kiln(&root).args(["image", "inspect", "app:2"]));
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["RepoTags"].as_array().unwrap().len(), 2);
    let (ok, out, _) =
        run(kiln(&root).args(["inspect", "-f", "{{.Os}}/{{.Architecture}}", "app:2"]));
    assert!(ok && out.starts_with("linux/"), "{out}");

    let (ok, out, _) = run(kiln(&root).args(["rmi", "-f", &id[7..19]]));
    assert!(
        ok && out.contains("Untagged: app:1") && out.contains("Deleted: sha256:"),
        "{out}"
    );
    // docker's words when no container, image or network has the name.
    let (ok, _, err) = run(kiln(&root).args(["inspect", "app:1"]));
    assert!(!ok && err.contains("No such object: app:1"), "{err}");
    let (ok, _, err) = run(kiln(&root).args(["image", "inspect", "app:1"]));
    assert!(!ok && err.contains("no such image"), "{err}");
    let (ok, out, _) = run(kiln(&root).args(["system", "df"]));
    assert!(
        ok && out.starts_with("TYPE") && out.contains("Build Cache"),
        "{out}"
    );
    let (ok, out, _) = run(kiln(&root).args(["system", "check"]));
    assert!(ok, "{out}");
}
