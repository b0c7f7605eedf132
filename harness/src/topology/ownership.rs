//! Which resources are this harness run's: every resource provisioning creates carries
//! `ManagedBy=harness` and `HarnessRun=<suffix>`. Teardown deletes, and re-provisioning
//! reconfigures, only what carries both; a same-named resource without them (a real
//! deployment whose suffix collides, something created by hand) is left untouched and
//! reported. Names alone never authorise a destructive call: with `--engine external`
//! they could be a real account's.

use std::collections::HashMap;

use crate::aws::Clients;
use crate::errors::sdk;

/// The tag every harness resource carries, with this value.
pub const MANAGED_BY: (&str, &str) = ("ManagedBy", "harness");
/// The tag naming the run (its value is the suffix).
pub const RUN: &str = "HarnessRun";

/// The ownership tags of run `suffix`.
pub fn tags(suffix: &str) -> Vec<(String, String)> {
    vec![
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (RUN.to_string(), suffix.to_string()),
    ]
}

/// Whether `tags` mark a resource as run `suffix`'s.
pub fn owns<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>, suffix: &str) -> bool {
    let map: HashMap<&str, &str> = tags.into_iter().collect();
    map.get(MANAGED_BY.0) == Some(&MANAGED_BY.1) && map.get(RUN) == Some(&suffix)
}

/// What a same-named resource turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// It exists without this run's tags (or its tags cannot be read): hands off.
    Foreign(String),
}

impl Ownership {
    fn of<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>, suffix: &str) -> Ownership {
        if owns(tags, suffix) {
            Ownership::Ours
        } else {
            Ownership::Foreign(format!(
                "exists without this run's tags ({}={}, {RUN}={suffix}); not created by the harness for this run, left untouched (choose another suffix)",
                MANAGED_BY.0, MANAGED_BY.1
            ))
        }
    }

    fn unreadable(what: &str, e: String) -> Ownership {
        Ownership::Foreign(format!(
            "its tags cannot be read ({what}: {e}); left untouched"
        ))
    }
}

pub async fn bucket(s3: &aws_sdk_s3::Client, name: &str, suffix: &str) -> Ownership {
    match s3.get_bucket_tagging().bucket(name).send().await {
        Ok(t) => Ownership::of(t.tag_set().iter().map(|t| (t.key(), t.value())), suffix),
        Err(e) => {
            let e = sdk(e);
            if e.contains("NoSuchTagSet") {
                Ownership::of([], suffix)
            } else {
                Ownership::unreadable("GetBucketTagging", e)
            }
        }
    }
}

pub async fn queue(clients: &Clients, url: &str, suffix: &str) -> Ownership {
    match clients.sqs.list_queue_tags().queue_url(url).send().await {
        Ok(t) => Ownership::of(
            t.tags()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            suffix,
        ),
        Err(e) => Ownership::unreadable("ListQueueTags", sdk(e)),
    }
}

pub async fn topic(clients: &Clients, arn: &str, suffix: &str) -> Ownership {
    match clients
        .sns
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
    {
        Ok(t) => Ownership::of(t.tags().iter().map(|t| (t.key(), t.value())), suffix),
        Err(e) => Ownership::unreadable("ListTagsForResource", sdk(e)),
    }
}

pub async fn key(kms: &aws_sdk_kms::Client, key_id: &str, suffix: &str) -> Ownership {
    match kms.list_resource_tags().key_id(key_id).send().await {
        Ok(t) => Ownership::of(
            t.tags().iter().map(|t| (t.tag_key(), t.tag_value())),
            suffix,
        ),
        Err(e) => Ownership::unreadable("ListResourceTags", sdk(e)),
    }
}

pub async fn role(clients: &Clients, name: &str, suffix: &str) -> Ownership {
    match clients.iam.list_role_tags().role_name(name).send().await {
        Ok(t) => Ownership::of(t.tags().iter().map(|t| (t.key(), t.value())), suffix),
        Err(e) => Ownership::unreadable("ListRoleTags", sdk(e)),
    }
}

pub async fn rule(clients: &Clients, arn: &str, suffix: &str) -> Ownership {
    match clients
        .events
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
    {
        Ok(t) => Ownership::of(t.tags().iter().map(|t| (t.key(), t.value())), suffix),
        Err(e) => Ownership::unreadable("ListTagsForResource", sdk(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 14: only both tags with this run's suffix make a resource ours.
    #[test]
    fn only_this_runs_tags_make_a_resource_ours() {
        assert!(owns(
            [("ManagedBy", "harness"), ("HarnessRun", "abc123")],
            "abc123"
        ));
        assert!(!owns(
            [("ManagedBy", "harness"), ("HarnessRun", "zzz999")],
            "abc123"
        ));
        assert!(!owns([("ManagedBy", "harness")], "abc123"));
        assert!(!owns([("HarnessRun", "abc123")], "abc123"));
        assert!(!owns(
            [("ManagedBy", "terraform"), ("HarnessRun", "abc123")],
            "abc123"
        ));
        assert!(!owns([], "abc123"));
        let t = tags("abc123");
        assert!(owns(
            t.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "abc123"
        ));
    }
}
