//! Query strings as docker's clients send them: `+` and `%XX` decoding, repeated keys,
//! lenient booleans (`1`, `true`, `True`, Python's `False`, empty) and the `filters` JSON.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ApiError;

/// A decoded query string: its pairs in order, repeated keys kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes `a=1&t=x&t=y` (`+` is a space, as compose 1.29 encodes spaces).
    pub fn parse(query: &str) -> Query {
        Query {
            pairs: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The first value of `key` (as Go's `r.Form.Get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (`t=a&t=b`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `key` is present at all.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// `key` as docker's boolean: false when absent, empty, `0`, `no`, `false` or `none`
    /// (any case), true otherwise (moby's `BoolValue`).
    pub fn bool(&self, key: &str) -> bool {
        self.get(key).is_some_and(parse_bool)
    }

    /// `key` as a boolean, `default` when the key is absent (the 28 CLI omits `rm` to mean true).
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.get(key).map_or(default, parse_bool)
    }

    /// `key` as an integer; absent or empty is `None`, anything else that is not one is a 400.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value for {key}: {text:?} is not an integer"
                ))
            }),
        }
    }

    /// `key` as a JSON value of type `T` (`buildargs={"A":"1"}`); absent or empty is `None`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON in {key}: {e}"))),
        }
    }

    /// The `filters` parameter.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        Filters::parse(self.get("filters").unwrap_or(""))
    }
}

fn parse_bool(text: &str) -> bool {
    let text = text.trim().to_ascii_lowercase();
    !matches!(text.as_str(), "" | "0" | "no" | "false" | "none")
}

/// Docker's `filters`: a key (`label`, `reference`, `status`) to a set of values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    map: BTreeMap<String, BTreeSet<String>>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum FilterValues {
    /// The current form: `{"label":{"a=b":true}}`.
    Set(BTreeMap<String, bool>),
    /// The old form (API < 1.22, still sent by some clients): `{"label":["a=b"]}`.
    List(Vec<String>),
}

impl Filters {
    /// Decodes the JSON in either form; empty text is no filter.
    pub fn parse(text: &str) -> Result<Filters, ApiError> {
        if text.trim().is_empty() {
            return Ok(Filters::default());
        }
        let raw: BTreeMap<String, FilterValues> = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let map = raw
            .into_iter()
            .map(|(k, v)| {
                let values = match v {
                    FilterValues::Set(set) => set.into_keys().collect(),
                    FilterValues::List(list) => list.into_iter().collect(),
                };
                (k, values)
            })
            .collect();
        Ok(Filters { map })
    }

    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The values of `key` (empty when absent).
    pub fn get(&self, key: &str) -> Vec<&str> {
        self.map
            .get(key)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Every `(key, value)` pair, keys in order (for an engine filter's `parse`).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))
    }

    /// Whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Refuses keys outside `accepted`, with dockerd's message (`invalid filter 'x'`).
    pub fn validate(&self, accepted: &[&str]) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// Whether `labels` match every `label` filter (`key` or `key=value`), as docker's
    /// `MatchKVList`.
    pub fn match_labels<'a>(&self, labels: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.get("label")
            .iter()
            .all(|want| match want.split_once('=') {
                Some((k, v)) => labels(k) == Some(v),
                None => labels(want).is_some(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_clients_send_them() {
        let q = Query::parse("a=1&b=true&c=True&d=0&e=false&f=False&g=&h=no");
        assert!(q.bool("a") && q.bool("b") && q.bool("c"));
        assert!(!q.bool("d") && !q.bool("e") && !q.bool("f") && !q.bool("g") && !q.bool("h"));
        assert!(!q.bool("missing"));
        assert!(q.bool_or("missing", true));
        assert!(!q.bool_or("d", true));
    }

    #[test]
    fn repeated_keys_plus_and_escapes() {
        let q = Query::parse("t=x%3A1&t=x:latest&label=com.docker+compose%3Dyes");
        assert_eq!(q.all("t"), vec!["x:1", "x:latest"]);
        assert_eq!(q.get("t"), Some("x:1"));
        assert_eq!(q.get("label"), Some("com.docker compose=yes"));
        assert!(q.has("label") && !q.has("nope"));
    }

    #[test]
    fn integers() {
        let q = Query::parse("t=3&tail=all&e=");
        assert_eq!(q.int("t").unwrap(), Some(3));
        assert_eq!(q.int("e").unwrap(), None);
        assert_eq!(q.int("missing").unwrap(), None);
        assert_eq!(q.int("tail").unwrap_err().status, 400);
    }

    #[test]
    fn json_values() {
        let q = Query::parse("buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&bad=%7B");
        let args: BTreeMap<String, Option<String>> = q.json("buildargs").unwrap().unwrap();
        assert_eq!(args["A"].as_deref(), Some("1"));
        assert_eq!(args["B"], None);
        assert!(q.json::<serde_json::Value>("bad").is_err());
    }

    #[test]
    fn filters_in_both_forms() {
        let new =
            Filters::parse(r#"{"label":{"a=b":true,"c":true},"status":{"exited":true}}"#).unwrap();
        let old = Filters::parse(r#"{"label":["a=b","c"],"status":["exited"]}"#).unwrap();
        assert_eq!(new, old);
        assert_eq!(new.get("label"), vec!["a=b", "c"]);
        assert!(new.contains("status") && !new.contains("name"));
        assert!(new.validate(&["label", "status"]).is_ok());
        assert_eq!(
            new.validate(&["label"]).unwrap_err().message,
            "invalid filter 'status'"
        );
        assert!(Filters::parse("").unwrap().is_empty());
        assert!(Filters::parse("[1]").is_err());
        assert!(Filters::parse(r#"{"label":"x"}"#).is_err());
        let labels = |k: &str| match k {
            "a" => Some("b"),
            "c" => Some(""),
            _ => None,
        };
        assert!(new.match_labels(labels));
        let other = Filters::parse(r#"{"label":{"a=x":true}}"#).unwrap();
        assert!(!other.match_labels(labels));
    }

    #[test]
    fn filters_from_a_compose_query() {
        let q =
            Query::parse("filters=%7B%22label%22%3A+%5B%22com.docker.compose.project%3Dx%22%5D%7D");
        assert_eq!(
            q.filters().unwrap().get("label"),
            vec!["com.docker.compose.project=x"]
        );
    }
}
