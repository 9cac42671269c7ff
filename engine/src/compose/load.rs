//! Finding, reading and combining the files of a project, as compose-go's `cli` options
//! and loader do: the project directory, `.env`/`--env-file`, `COMPOSE_FILE`, the default
//! file names (searched upward from the directory), the project name's precedence, then
//! per file interpolation and the merge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::ComposeError;
use super::interpolate::{interpolate_tree, substitute, SubstError};
use super::model::Project;
use super::yaml::{Node, Value};
use super::{dotenv, merge, normalize, schema, yaml};

/// The compose file names looked for, in order of preference.
pub const DEFAULT_FILE_NAMES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The override file names looked for next to the file found, in order of preference.
pub const OVERRIDE_FILE_NAMES: &[&str] = &[
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// What to load: the faces' flags and the process environment.
#[derive(Debug, Clone, Default)]
pub struct ProjectOptions {
    /// `-f FILE...`, merged in order (relative to `cwd`); empty: `COMPOSE_FILE`, else the
    /// default names.
    pub files: Vec<PathBuf>,
    /// `-p NAME`.
    pub project_name: Option<String>,
    /// `--project-directory DIR` (default: the first file's directory).
    pub project_dir: Option<PathBuf>,
    /// `--env-file FILE...` (default: `.env` in the project directory, if it exists).
    pub env_files: Vec<PathBuf>,
    /// `--profile P...` (default: `COMPOSE_PROFILES`, comma-separated).
    pub profiles: Vec<String>,
    /// Services named on the command line (`up SERVICE...`): their profiles are enabled,
    /// as docker compose does (the project still holds every enabled service).
    pub services: Vec<String>,
    /// `--scale SERVICE=N`.
    pub scale: BTreeMap<String, u32>,
    /// The process environment (it wins over env files).
    pub environment: BTreeMap<String, String>,
    /// The directory relative paths in the options are resolved from (default: the
    /// process's current directory).
    pub cwd: Option<PathBuf>,
    /// Compose and env files given in memory instead of read from disk, by absolute path
    /// (`-f -` reading standard input, tests, fuzzing).
    pub contents: BTreeMap<PathBuf, String>,
}

/// A directory name as a project name: lowercased, characters other than letters, digits,
/// `-` and `_` dropped, leading `-`/`_` trimmed (compose-go's `NormalizeProjectName`).
pub fn normalize_project_name(name: &str) -> String {
    let lower = name.to_lowercase();
    let kept: String = lower
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    kept.trim_start_matches(['-', '_']).to_string()
}

/// Whether `name` is a valid project name as given (`-p`, `COMPOSE_PROJECT_NAME`, `name:`).
fn check_project_name(name: &str) -> Result<String, ComposeError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(ComposeError::ProjectName {
            name: name.to_string(),
        })
    }
}

/// `path` made absolute against `cwd`, lexically cleaned (`./a/../b` is `b`).
fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    schema::clean(&cwd.join(path))
}

fn read(options: &ProjectOptions, path: &Path) -> Result<String, ComposeError> {
    if let Some(text) = options.contents.get(path) {
        return Ok(text.clone());
    }
    std::fs::read_to_string(path).map_err(|source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads the project `options` describe.
pub fn load(options: &ProjectOptions) -> Result<Project, ComposeError> {
    let cwd = match &options.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().map_err(|source| ComposeError::Read {
            path: PathBuf::from("."),
            source,
        })?,
    };
    let mut files: Vec<PathBuf> = options.files.iter().map(|f| absolute(&cwd, f)).collect();
    let project_dir = options.project_dir.as_ref().map(|d| absolute(&cwd, d));
    // where .env is looked for: the project directory, else the first file's, else cwd
    let env_dir = project_dir
        .clone()
        .or_else(|| {
            files
                .first()
                .and_then(|f| f.parent().map(Path::to_path_buf))
        })
        .unwrap_or_else(|| cwd.clone());

    // the environment: env files, with the process's variables over them
    let env_files: Vec<PathBuf> = if options.env_files.is_empty() {
        let disabled = options
            .environment
            .get("COMPOSE_DISABLE_ENV_FILE")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "True"));
        let dotenv = env_dir.join(".env");
        if !disabled && (dotenv.is_file() || options.contents.contains_key(&dotenv)) {
            vec![dotenv]
        } else {
            Vec::new()
        }
    } else {
        options
            .env_files
            .iter()
            .map(|f| absolute(&cwd, f))
            .collect()
    };
    let mut environment: BTreeMap<String, String> = BTreeMap::new();
    for file in &env_files {
        let text = read(options, file)?;
        let process = &options.environment;
        let known = environment.clone();
        let vars = dotenv::parse(&text, file, &|k| {
            process.get(k).or_else(|| known.get(k)).cloned()
        })?;
        environment.extend(vars);
    }
    environment.extend(options.environment.clone());

    if files.is_empty() {
        if let Some(list) = environment.get("COMPOSE_FILE").filter(|l| !l.is_empty()) {
            let separator = environment
                .get("COMPOSE_PATH_SEPARATOR")
                .cloned()
                .unwrap_or_else(|| ":".into());
            files = list
                .split(separator.as_str())
                .filter(|f| !f.is_empty())
                .map(|f| absolute(&env_dir, Path::new(f)))
                .collect();
        }
    }
    let mut warnings = Vec::new();
    if files.is_empty() {
        files = default_files(&env_dir, &mut warnings)?;
    }
    let working_dir = project_dir
        .or_else(|| {
            files
                .first()
                .and_then(|f| f.parent().map(Path::to_path_buf))
        })
        .unwrap_or(cwd);

    // parse every file (a file may hold several documents: each merges like another file)
    let mut documents: Vec<Node> = Vec::new();
    for file in &files {
        let text = read(options, file)?;
        let name: Arc<str> = Arc::from(file.to_string_lossy().as_ref());
        for doc in yaml::parse(&name, &text)? {
            match doc.value {
                // an empty document adds nothing
                Value::Null => continue,
                Value::Map(_) => {}
                _ => {
                    return Err(ComposeError::Invalid {
                        location: doc.location,
                        path: "(root)".into(),
                        message: "top-level object must be a mapping".into(),
                    })
                }
            }
            if doc.get("version").is_some() {
                warnings.push(format!(
                    "{name}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion"
                ));
            }
            documents.push(doc);
        }
    }

    if documents.is_empty() {
        return Err(ComposeError::Invalid {
            location: super::error::Location {
                file: Arc::from(
                    files
                        .first()
                        .map(|f| f.to_string_lossy())
                        .unwrap_or_default()
                        .as_ref(),
                ),
                line: 1,
                column: 1,
            },
            path: "(root)".into(),
            message: "empty compose file".into(),
        });
    }

    // the project name: -p, COMPOSE_PROJECT_NAME, the files' `name`, the directory
    let mut unset = Vec::new();
    let name = if let Some(name) = options.project_name.as_ref().filter(|n| !n.is_empty()) {
        check_project_name(name)?
    } else if let Some(name) = environment
        .get("COMPOSE_PROJECT_NAME")
        .filter(|n| !n.is_empty())
    {
        check_project_name(name)?
    } else if let Some(name) = name_from_files(&documents, &environment, &mut unset)? {
        check_project_name(&name)?
    } else {
        let base = working_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = normalize_project_name(&base);
        if name.is_empty() {
            return Err(ComposeError::ProjectName { name: base });
        }
        name
    };
    environment
        .entry("COMPOSE_PROJECT_NAME".into())
        .or_insert_with(|| name.clone());

    // interpolate each file, then merge them in order
    let mut merged: Option<Node> = None;
    {
        let env = &environment;
        let lookup = |k: &str| env.get(k).cloned();
        for mut doc in documents {
            interpolate_tree(&mut doc, "", &lookup, &mut unset)?;
            merge::apply_extends(&mut doc)?;
            merged = Some(match merged {
                None => doc,
                Some(base) => merge::merge(base, doc)?,
            });
        }
    }
    let mut root = merged.unwrap_or_else(|| {
        Node::new(
            Value::Null,
            super::error::Location {
                file: Arc::from(""),
                line: 1,
                column: 1,
            },
        )
    });
    merge::enforce_unicity(&mut root);

    let mut seen = std::collections::BTreeSet::new();
    let mut unset_warnings: Vec<String> = unset
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .map(|v| format!("The {v:?} variable is not set. Defaulting to a blank string."))
        .collect();
    unset_warnings.extend(warnings);
    let mut warnings = unset_warnings;

    let mut converted = {
        let mut cx = schema::Context {
            working_dir: &working_dir,
            environment: &environment,
            project: &name,
            warnings: &mut warnings,
        };
        schema::project(&root, &mut cx)?
    };
    let profiles: Vec<String> = if options.profiles.is_empty() {
        environment
            .get("COMPOSE_PROFILES")
            .map(|p| {
                p.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        options.profiles.clone()
    };
    let (services, disabled_services) = normalize::services(
        &mut converted,
        &name,
        &profiles,
        &options.services,
        &options.scale,
        &mut warnings,
    )?;
    Ok(Project {
        name,
        working_dir,
        config_files: files,
        env_files,
        services,
        disabled_services,
        networks: converted.networks,
        volumes: converted.volumes,
        secrets: converted.secrets,
        configs: converted.configs,
        extensions: converted.extensions,
        environment,
        warnings,
    })
}

/// The top-level `name` of the last file that has one, interpolated.
fn name_from_files(
    documents: &[Node],
    environment: &BTreeMap<String, String>,
    unset: &mut Vec<String>,
) -> Result<Option<String>, ComposeError> {
    let mut found = None;
    for doc in documents {
        if let Some(node) = doc.get("name") {
            let Some(text) = node.as_str() else {
                continue;
            };
            let value =
                substitute(text, &|k| environment.get(k).cloned(), unset).map_err(|e| match e {
                    SubstError::Invalid => ComposeError::BadInterpolation {
                        location: node.location.clone(),
                        path: "name".into(),
                        template: text.to_string(),
                    },
                    SubstError::Missing { name, message } => ComposeError::MissingVariable {
                        location: node.location.clone(),
                        name,
                        message,
                    },
                })?;
            if !value.is_empty() {
                found = Some(value);
            }
        }
    }
    Ok(found)
}

/// The default file in `dir` or the nearest parent that has one, and its override file.
fn default_files(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>, ComposeError> {
    let mut current = Some(dir);
    while let Some(d) = current {
        let found: Vec<PathBuf> = DEFAULT_FILE_NAMES
            .iter()
            .map(|n| d.join(n))
            .filter(|p| p.is_file())
            .collect();
        if let Some(first) = found.first() {
            if found.len() > 1 {
                warnings.push(format!(
                    "Found multiple config files with supported names: {}; using {}",
                    found
                        .iter()
                        .map(|p| p.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(", "),
                    first.display()
                ));
            }
            let mut files = vec![first.clone()];
            if let Some(over) = OVERRIDE_FILE_NAMES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                files.push(over);
            }
            return Ok(files);
        }
        current = d.parent();
    }
    Err(ComposeError::NoConfigFile {
        dir: dir.to_path_buf(),
        names: DEFAULT_FILE_NAMES.join(", "),
    })
}
