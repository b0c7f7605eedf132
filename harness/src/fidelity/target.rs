//! A path-style S3 request as the fidelity layer reads it: bucket, key and the query's
//! parameters in order. Both the proxy and the fault matcher read requests this way.

/// A path-style S3 request: bucket and the query's parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    pub bucket: String,
    pub has_key: bool,
    /// The object key, percent-decoded from the path (empty for bucket requests).
    pub key: String,
    pub query: Vec<(String, Option<String>)>,
}

impl S3Target {
    pub fn parse(path_and_query: &str) -> S3Target {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let path = path.trim_start_matches('/');
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        S3Target {
            bucket: bucket.to_string(),
            has_key: !key.is_empty(),
            key: percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .into_owned(),
            query: query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (p.to_string(), None),
                })
                .collect(),
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    pub fn set(&mut self, name: &str, value: String) {
        for (k, v) in &mut self.query {
            if k == name {
                *v = Some(value.clone());
            }
        }
    }

    pub fn query_string(&self) -> String {
        self.query
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}
