//! A stage's environment as RUN sees it and expansion reads it: the base
//! image's Env, then ARG values and ENV settings in order, a key set again
//! keeping its place (BuildKit's `AddEnv`).

use kiln_parser::shell::Env;

/// Ordered `KEY=value` pairs with replace-in-place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageEnv {
    pairs: Vec<(String, String)>,
}

impl StageEnv {
    /// From an image config's `KEY=value` list.
    pub fn from_config(env: Option<&[String]>) -> Self {
        let mut out = StageEnv::default();
        for kv in env.unwrap_or_default() {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            out.set(k, v);
        }
        out
    }

    /// Sets `key`, keeping its position when it exists.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.pairs.push((key.to_string(), value.to_string())),
        }
    }

    /// As `KEY=value` strings, for a process.
    pub fn to_list(&self) -> Vec<String> {
        self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl Env for StageEnv {
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_again_keeps_its_place() {
        let mut env = StageEnv::from_config(Some(&["PATH=/bin".into(), "A=1".into()]));
        env.set("B", "2");
        env.set("A", "3");
        assert_eq!(env.to_list(), ["PATH=/bin", "A=3", "B=2"]);
        assert_eq!(env.get("A"), Some("3"));
        assert_eq!(env.get("C"), None);
    }
}
