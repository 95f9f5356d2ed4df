//! Reading the JSON events the tool prints with `--message-format json`, one
//! per line, among whatever else it prints.

use serde_json::Value;

use crate::Result;

/// The first JSON line of `stdout` whose `reason` is `reason`.
pub(super) fn event(stdout: &str, reason: &str) -> Result<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value.get("reason").and_then(Value::as_str) == Some(reason))
        .ok_or_else(|| format!("no `{reason}` event in the output").into())
}

/// Every JSON line of `stdout` whose `reason` is `reason`.
pub(super) fn event_lines(stdout: &str, reason: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value.get("reason").and_then(Value::as_str) == Some(reason))
        .collect()
}

/// The size of the last layer (the function's own) of the `image` event in `stdout`.
pub(super) fn last_layer_size(stdout: &str) -> Result<u64> {
    event(stdout, "image")?
        .get("image")
        .and_then(|image| image.get("layers"))
        .and_then(Value::as_array)
        .and_then(|layers| layers.last())
        .and_then(|layer| layer.get("size"))
        .and_then(Value::as_u64)
        .ok_or_else(|| "the image event has no layers".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_found_among_other_lines() {
        let image = r#"{"image":{"digest":"sha256:ab","layers":[{"size":10},{"size":2048}]},"reason":"image"}"#;
        let pushed = r#"{"reason":"pushed","image":{"mounted":[]}}"#;
        let stdout = format!("noise\n{pushed}\n{image}\n{{\"reason\": 1}}\n{pushed}\n");
        let found = event(&stdout, "image").expect("an image event");
        assert_eq!(
            found
                .get("image")
                .and_then(|image| image.get("digest"))
                .and_then(Value::as_str),
            Some("sha256:ab")
        );
        assert_eq!(last_layer_size(&stdout).ok(), Some(2048));
        assert_eq!(event_lines(&stdout, "pushed").len(), 2);
        assert!(event("noise\n", "image").is_err());
        assert!(last_layer_size(r#"{"reason":"image","image":{"layers":[]}}"#).is_err());
    }
}
