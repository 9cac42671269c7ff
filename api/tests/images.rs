//! Images, builds, volumes and disk usage through the service, on a temporary socket and
//! root with busybox (from Debian's busybox-static) imported: driven by the real docker CLI
//! 28 (/usr/local/bin/docker) where it reaches, and by raw HTTP for what it does not
//! (filters, the `q=1` body, error answers). Runs as root (RUN steps need namespaces).

mod common;

use std::path::Path;
use std::process::Command;

use common::{have_docker, lines, tar_of, text, Service};

#[test]
fn the_docker_cli_lists_inspects_tags_removes_saves_and_loads_images() {
    if !have_docker() {
        return;
    }
    let s = Service::start();
    let names = || s.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(names().trim(), "busybox:latest");
    let id = s.docker_ok(&["image", "inspect", "-f", "{{.Id}} {{.Os}}", "busybox"]);
    assert!(
        id.starts_with("sha256:") && id.trim().ends_with(" linux"),
        "{id}"
    );
    let id = id.split(' ').next().unwrap().to_string();
    let missing = s.docker(&["image", "inspect", "acc/nosuch:1"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such image: acc/nosuch:1"),
        "{}",
        text(&missing)
    );

    s.docker_ok(&["tag", "busybox", "acc/bb:tagged"]);
    assert!(names().lines().any(|l| l == "acc/bb:tagged"), "{}", names());
    let tagged = s.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "acc/bb:tagged"]);
    assert_eq!(tagged.trim(), id);
    let history = s.docker_ok(&["history", "--no-trunc", "acc/bb:tagged"]);
    assert!(history.contains(&id), "{history}");
    let removed = s.docker_ok(&["rmi", "acc/bb:tagged"]);
    assert_eq!(removed.trim(), "Untagged: acc/bb:tagged");
    assert_eq!(names().trim(), "busybox:latest");

    // save to stdout, read by skopeo; remove; load from stdin.
    let tar = s.dir.path().join("bb.tar");
    let out = s.docker(&["save", "busybox:latest"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&tar, &out.stdout).unwrap();
    if Path::new("/usr/bin/skopeo").exists() {
        let inspect = Command::new("skopeo")
            .args(["inspect", &format!("docker-archive:{}", tar.display())])
            .output()
            .unwrap();
        assert!(inspect.status.success(), "{}", text(&inspect));
        let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(v["Os"], "linux");
    }
    let removed = s.docker_ok(&["rmi", "busybox:latest"]);
    assert!(
        removed.contains("Untagged: busybox:latest") && removed.contains(&format!("Deleted: {id}")),
        "{removed}"
    );
    assert!(!s.docker(&["image", "inspect", "busybox"]).status.success());
    let loaded = s.docker_with(&["load"], Some(&tar));
    assert!(loaded.status.success(), "{}", text(&loaded));
    assert_eq!(
        String::from_utf8_lossy(&loaded.stdout).trim(),
        "Loaded image: busybox:latest"
    );
    let again = s.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    assert_eq!(again.trim(), id);
}

#[test]
fn the_docker_cli_builds_with_the_classic_builder() {
    if !have_docker() {
        return;
    }
    let s = Service::start();
    let ctx = s.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("f"), "file-ok\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS base\nARG M=default\nRUN echo \"building-$M\" && echo \"m=$M\" > /m\n\
         COPY f /f\nFROM base AS web\nRUN echo web > /w\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("other.Dockerfile"),
        "FROM busybox\nRUN echo other > /o\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("fail.Dockerfile"),
        "FROM busybox\nRUN echo about-to-fail && exit 9\n",
    )
    .unwrap();
    let c = ctx.to_str().unwrap();

    let out = s.docker_ok(&["build", "--build-arg", "M=cli", "-t", "acc/app:1", c]);
    for want in [
        "Step 1/",
        "RUN echo \"building-$M\"",
        "building-cli",
        "Successfully built ",
        "Successfully tagged acc/app:1",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    let id = s.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "acc/app:1"]);
    let short = &id.trim()["sha256:".len().."sha256:".len() + 12];
    assert!(
        out.contains(&format!("Successfully built {short}")),
        "{out}"
    );

    // -q: the ID and nothing else on stdout.
    let quiet = s.docker_ok(&["build", "-q", "--build-arg", "M=cli", "-t", "acc/app:q", c]);
    assert_eq!(
        quiet.trim(),
        id.trim(),
        "a rebuild from cache has the same ID"
    );

    // --iidfile and -f.
    let iid = s.dir.path().join("iid");
    let other = ctx.join("other.Dockerfile");
    s.docker_ok(&[
        "build",
        "--iidfile",
        iid.to_str().unwrap(),
        "-f",
        other.to_str().unwrap(),
        "-t",
        "acc/other:1",
        c,
    ]);
    let written = std::fs::read_to_string(&iid).unwrap();
    let other_id = s.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "acc/other:1"]);
    assert_eq!(written, other_id.trim());
    assert_ne!(written, id.trim());

    // `- <Dockerfile`: a tar with the one entry Dockerfile.
    let stdin = s.docker_with(&["build", "-q", "-t", "acc/stdin:1", "-"], Some(&other));
    assert!(stdin.status.success(), "{}", text(&stdin));
    assert_eq!(
        String::from_utf8_lossy(&stdin.stdout).trim(),
        other_id.trim()
    );

    // --target: the base stage's image lacks the web stage's file.
    s.docker_ok(&["build", "-q", "--target", "base", "-t", "acc/base:1", c]);
    let store = kiln_engine::Engine::new(s.root());
    let base = store.inspect_image("acc/base:1").unwrap();
    let app = store.inspect_image("acc/app:1").unwrap();
    assert_eq!(base.root_fs.layers.len() + 1, app.root_fs.layers.len());

    // A failing RUN: its output shown, the CLI exits with its status, nothing tagged.
    let fail = ctx.join("fail.Dockerfile");
    let failed = s.docker(&["build", "-f", fail.to_str().unwrap(), "-t", "acc/fail:1", c]);
    assert_eq!(failed.status.code(), Some(9), "{}", text(&failed));
    assert!(
        String::from_utf8_lossy(&failed.stdout).contains("about-to-fail"),
        "{}",
        text(&failed)
    );
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("exit 9"),
        "{}",
        text(&failed)
    );
    assert!(!s
        .docker(&["image", "inspect", "acc/fail:1"])
        .status
        .success());
}

#[test]
fn build_streams_over_raw_http() {
    let s = Service::start();
    // q=1: the one line a real dockerd sends.
    let tar = tar_of(&[("Dockerfile", "FROM busybox\nLABEL stage=one\n")]);
    let (status, body) = s.request("POST", "/v1.41/build?q=1&t=acc%2Fraw%3A1", &tar);
    assert_eq!(status, 200, "{body}");
    let got = lines(&body);
    assert_eq!(got.len(), 1, "{body}");
    let id = got[0]["stream"].as_str().unwrap().trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{body}");

    // Without q: aux.ID then Successfully built/tagged.
    let (_, body) = s.request("POST", "/build?t=acc%2Fraw%3A2&rm=1", &tar);
    let got = lines(&body);
    let aux = got.iter().position(|m| m["aux"]["ID"] == id.as_str());
    let built = got
        .iter()
        .position(|m| m["stream"] == format!("Successfully built {}\n", &id[7..19]).as_str());
    let tagged = got
        .iter()
        .position(|m| m["stream"] == "Successfully tagged acc/raw:2\n");
    assert!(aux < built && built < tagged && aux.is_some(), "{body}");

    // A Dockerfile that does not parse: the error names the file and line.
    let bad = tar_of(&[("Dockerfile", "FROM busybox\nNOPE x\n")]);
    let (status, body) = s.request("POST", "/build?t=acc%2Fbad%3A1", &bad);
    assert_eq!(status, 200);
    let last = lines(&body).pop().unwrap();
    let message = last["errorDetail"]["message"].as_str().unwrap();
    assert!(message.contains("Dockerfile:2"), "{message}");
    assert_eq!(last["error"], message);

    // A dockerfile= path inside the context, and build args (null: unset).
    let tar = tar_of(&[
        ("sub/Df", "FROM busybox\nARG A=unset\nLABEL a=$A\n"),
        ("Dockerfile", "FROM nothing-here\n"),
    ]);
    let (_, body) = s.request(
        "POST",
        "/build?dockerfile=sub%2FDf&t=acc%2Fargs%3A1&buildargs=%7B%22A%22%3A%22set%22%2C%22B%22%3Anull%7D",
        &tar,
    );
    assert!(body.contains("Successfully tagged acc/args:1"), "{body}");
    let (_, inspect) = s.get_json("/images/acc/args:1/json");
    assert_eq!(inspect["Config"]["Labels"]["a"], "set");

    // What kiln cannot build is a 400 before any stream.
    let (status, body) = s.request(
        "POST",
        "/build?remote=https%3A%2F%2Fexample.com%2Fc.tgz",
        b"",
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = s.request("POST", "/build?version=2&remote=client-session", b"");
    assert_eq!(status, 400);
    // A bad tag is refused before the build runs.
    let (_, body) = s.request(
        "POST",
        "/build?t=Bad%3A%3Atag",
        &tar_of(&[("Dockerfile", "FROM busybox\n")]),
    );
    assert!(
        body.contains("errorDetail") && body.contains("invalid reference"),
        "{body}"
    );
}

#[test]
fn image_answers_over_raw_http() {
    let s = Service::start();
    let (status, _) = s.request("POST", "/images/busybox/tag?repo=acc%2Fx&tag=1", b"");
    assert_eq!(status, 201);
    let (status, _) = s.request("POST", "/images/busybox:latest/tag?repo=acc%2Fy", b"");
    assert_eq!(status, 201);

    // One entry per image ID, with every name.
    let (status, list) = s.get_json("/v1.41/images/json");
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let entry = &list[0];
    let mut tags: Vec<&str> = entry["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["acc/x:1", "acc/y:latest", "busybox:latest"]);
    assert!(entry["Created"].is_i64() && entry["Size"].as_u64().unwrap() > 0);
    assert_eq!(entry["SharedSize"], -1);
    assert_eq!(entry["Containers"], -1);
    assert_eq!(entry["VirtualSize"], entry["Size"]);
    let id = entry["Id"].as_str().unwrap().to_string();

    // Filters: reference globs keep only the matching names; dangling=true lists nothing.
    let filtered = |f: &str| {
        let (status, v) = s.get_json(&format!("/images/json?filters={f}"));
        assert_eq!(status, 200, "{f}: {v}");
        v
    };
    let acc = filtered("%7B%22reference%22%3A%7B%22acc%2F*%22%3Atrue%7D%7D");
    let mut acc_tags: Vec<String> = acc[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    acc_tags.sort();
    assert_eq!(acc_tags, ["acc/x:1", "acc/y:latest"]);
    assert_eq!(
        filtered("%7B%22dangling%22%3A%5B%22true%22%5D%7D"),
        serde_json::json!([])
    );
    assert_eq!(
        filtered("%7B%22label%22%3A%5B%22nope%22%5D%7D"),
        serde_json::json!([])
    );
    let (status, body) = s.request(
        "GET",
        "/images/json?filters=%7B%22status%22%3A%5B%22x%22%5D%7D",
        b"",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid filter 'status'"), "{body}");
    let (status, body) = s.request(
        "GET",
        "/images/json?filters=%7B%22before%22%3A%5B%22acc%2Fnone%22%5D%7D",
        b"",
    );
    assert_eq!(status, 404, "{body}");

    // Missing images are docker's 404.
    let (status, v) = s.get_json("/images/acc/nosuch:1/json");
    assert_eq!(
        (status, v["message"].as_str()),
        (404, Some("No such image: acc/nosuch:1"))
    );
    let (status, _) = s.request("POST", "/images/acc/nosuch:1/tag?repo=acc%2Fz", b"");
    assert_eq!(status, 404);
    let (status, _) = s.request("GET", "/images/get?names=acc%2Fnosuch%3A1", b"");
    assert_eq!(status, 404);
    let (status, _) = s.request("POST", "/images/busybox/tag?repo=Bad%20Name", b"");
    assert_eq!(status, 400);

    // History: the newest entry has the ID and the names.
    let (_, history) = s.get_json("/images/acc/x:1/history");
    assert_eq!(history[0]["Id"], id.as_str());
    assert!(history[0]["Tags"].as_array().unwrap().len() == 3);

    // rmi of an ID with several names needs force (409), then removes them all.
    let (status, body) = s.request("DELETE", &format!("/images/{}", &id[7..19]), b"");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("must be forced"), "{body}");
    let (status, body) = s.request("DELETE", "/images/acc/x:1", b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!([{ "Untagged": "acc/x:1" }])
    );

    // save by /images/{name}/get streams a docker-archive that loads back.
    let (status, archive) = s.request_bytes("GET", "/images/acc/y/get", b"");
    assert_eq!(status, 200);
    let mut entries: Vec<String> = tar::Archive::new(&archive[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    entries.sort();
    assert!(
        entries.contains(&"manifest.json".to_string()),
        "{entries:?}"
    );
    let (status, body) = s.request("DELETE", &format!("/images/{}?force=1", &id[7..19]), b"");
    assert_eq!(status, 200);
    let removed = serde_json::from_str::<serde_json::Value>(&body).unwrap();
    assert_eq!(
        removed.as_array().unwrap().last().unwrap()["Deleted"],
        id.as_str()
    );

    // prune with nothing to prune answers docker's shape.
    let (status, v) = s.get_json("/images/json");
    assert_eq!((status, v), (200, serde_json::json!([])));
    let (status, body) = s.request("POST", "/images/prune", b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["SpaceReclaimed"].is_u64() && v["ImagesDeleted"].is_null(),
        "{v}"
    );
}

#[test]
fn volumes_through_the_cli_and_raw_http() {
    let s = Service::start();
    if have_docker() {
        assert_eq!(s.docker_ok(&["volume", "create", "acc-v"]).trim(), "acc-v");
        let listed = s.docker_ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
        assert_eq!(listed.trim(), "acc-v local");
        let mountpoint = s.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "acc-v"]);
        assert!(Path::new(mountpoint.trim()).is_dir(), "{mountpoint}");
        assert_eq!(s.docker_ok(&["volume", "rm", "acc-v"]).trim(), "acc-v");
        assert!(s.docker_ok(&["volume", "ls", "-q"]).trim().is_empty());
        let missing = s.docker(&["volume", "inspect", "acc-v"]);
        assert!(!missing.status.success());
    }
    // 20.10's body, with labels.
    let (status, body) = s.request(
        "POST",
        "/volumes/create",
        br#"{"Driver":"local","DriverOpts":{},"Labels":{"app":"web"},"Name":"acc-web"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Name"], "acc-web");
    assert_eq!(v["Labels"]["app"], "web");
    assert_eq!(
        (v["Scope"].as_str(), v["Driver"].as_str()),
        (Some("local"), Some("local"))
    );
    // 28's body, and none at all: a made-up name.
    let (status, _) = s.request(
        "POST",
        "/volumes/create",
        br#"{"Driver":"local","Name":"acc-two"}"#,
    );
    assert_eq!(status, 201);
    let (status, body) = s.request("POST", "/volumes/create", b"");
    assert_eq!(status, 201);
    let anonymous: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(anonymous["Name"].as_str().unwrap().len(), 64);
    let (status, _) = s.request(
        "POST",
        "/volumes/create",
        br#"{"Driver":"nfs","Name":"x1"}"#,
    );
    assert_eq!(status, 400);

    let names = |filters: &str| -> Vec<String> {
        let (status, v) = s.get_json(&format!("/volumes?filters={filters}"));
        assert_eq!(status, 200, "{v}");
        assert!(v["Warnings"].is_null());
        v["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["Name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("%7B%22label%22%3A%7B%22app%3Dweb%22%3Atrue%7D%7D"),
        ["acc-web"]
    );
    assert_eq!(names("%7B%22name%22%3A%5B%22two%22%5D%7D"), ["acc-two"]);
    assert_eq!(names("").len(), 3);
    let (status, _) = s.request(
        "GET",
        "/volumes?filters=%7B%22driver%22%3A%5B%22x%22%5D%7D",
        b"",
    );
    assert_eq!(status, 400);

    let (status, v) = s.get_json("/volumes/acc-web");
    assert_eq!((status, v["Name"].as_str()), (200, Some("acc-web")));
    let (status, v) = s.get_json("/volumes/acc-none");
    assert_eq!(status, 404, "{v}");
    let (status, _) = s.request("DELETE", "/volumes/acc-two", b"");
    assert_eq!(status, 204);
    let (status, _) = s.request("DELETE", "/volumes/acc-two", b"");
    assert_eq!(status, 404);

    // df lists the image and the volumes with their sizes.
    let (status, df) = s.get_json("/system/df");
    assert_eq!(status, 200);
    assert_eq!(df["Images"].as_array().unwrap().len(), 1);
    assert_eq!(df["Volumes"].as_array().unwrap().len(), 2);
    assert!(df["Volumes"][0]["UsageData"]["Size"].is_u64());
    assert!(df["LayersSize"].as_u64().unwrap() > 0);

    // prune: every volume no container mounts.
    let (status, body) = s.request("POST", "/volumes/prune", b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["VolumesDeleted"].as_array().unwrap().len(), 2, "{v}");
    assert!(names("").is_empty());
}
