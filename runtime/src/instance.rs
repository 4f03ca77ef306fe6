//! An instance id for a process that was given none.

/// The environment variables that name where a process runs, most specific first: a pod name
/// set through the Kubernetes downward API, then ECS's container metadata endpoint (whose last
/// path segment is the task's container id), then the host name (a Kubernetes pod's own name).
const PLACES: [&str; 4] = [
    "POD_NAME",
    "ECS_CONTAINER_METADATA_URI_V4",
    "ECS_CONTAINER_METADATA_URI",
    "HOSTNAME",
];

/// An instance id for this process: where it runs (the pod name, the ECS container id or the
/// host name), then its process id and a random suffix, so that two processes never share one,
/// even on one host, and a restarted process is a new instance. [`crate::Balancer::new`] uses
/// it when the configuration gives no id.
pub fn instance_id_from_environment() -> String {
    let host = std::fs::read_to_string("/etc/hostname").ok();
    instance_id_from(
        |name| std::env::var(name).ok(),
        host,
        std::process::id(),
        random_suffix(),
    )
}

/// The id from the environment `env`, the host file's text, a process id and a random number.
fn instance_id_from(
    env: impl Fn(&str) -> Option<String>,
    host_file: Option<String>,
    pid: u32,
    random: u32,
) -> String {
    let place = PLACES
        .iter()
        .filter_map(|name| env(name).map(|v| place_name(name, &v)))
        .chain(host_file.map(|h| h.trim().to_owned()))
        .find(|p| !p.is_empty())
        .unwrap_or_else(|| "instance".to_owned());
    // Keep only what an instance id allows, and room for the suffix within 128 bytes.
    let place: String = place
        .chars()
        .map(|c| {
            let ok = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/');
            if ok { c } else { '-' }
        })
        .take(100)
        .collect();
    format!("{place}-{pid}-{random:08x}")
}

/// The part of variable `name`'s value `value` that names the place: the last path segment of
/// an ECS metadata URI, the whole value otherwise.
fn place_name(name: &str, value: &str) -> String {
    let value = value.trim();
    if name.starts_with("ECS_") {
        return value
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned();
    }
    value.to_owned()
}

/// 32 random bits for the id's suffix.
fn random_suffix() -> u32 {
    entropy() as u32
}

/// A nonzero number from the operating system's entropy (the keys std seeds its hash maps
/// with): a node's seed when the configuration left it at 0, and a generated id's suffix. Each
/// call draws another.
#[allow(
    clippy::disallowed_types,
    reason = "the runtime is where OS entropy may enter: the core takes it as the seed"
)]
pub(crate) fn entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqsbalancer_core::InstanceId;

    fn id(vars: &[(&str, &str)], host_file: Option<&str>) -> String {
        let env = |name: &str| {
            let found = vars.iter().find(|(n, _)| *n == name);
            found.map(|(_, v)| (*v).to_owned())
        };
        instance_id_from(env, host_file.map(str::to_owned), 42, 0xbeef)
    }

    #[test]
    fn the_most_specific_place_names_the_instance() {
        let pod = [("POD_NAME", "orders-7d9f-x2"), ("HOSTNAME", "node-3")];
        assert_eq!(id(&pod, None), "orders-7d9f-x2-42-0000beef");
        let ecs = "http://169.254.170.2/v4/0f1e2d3c4b5a4f69-1234567890";
        let ecs = [
            ("ECS_CONTAINER_METADATA_URI_V4", ecs),
            ("HOSTNAME", "ip-10-0-0-1"),
        ];
        assert_eq!(id(&ecs, None), "0f1e2d3c4b5a4f69-1234567890-42-0000beef");
        assert_eq!(id(&[("HOSTNAME", "web-1")], None), "web-1-42-0000beef");
        assert_eq!(id(&[], Some("box\n")), "box-42-0000beef");
        assert_eq!(id(&[("HOSTNAME", " ")], None), "instance-42-0000beef");
    }

    #[test]
    fn every_generated_id_is_a_valid_instance_id() {
        let long = "h".repeat(300);
        for place in ["weird host name!", "é", long.as_str(), ""] {
            let generated = id(&[("HOSTNAME", place)], None);
            assert!(InstanceId::new(&generated).is_ok(), "{generated}");
        }
    }

    #[test]
    fn each_call_draws_a_new_id() {
        assert_ne!(
            instance_id_from_environment(),
            instance_id_from_environment()
        );
    }
}
