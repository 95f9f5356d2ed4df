//! The AWS event-stream encoding (`application/vnd.amazon.eventstream`) of
//! InvokeWithResponseStream answers: `PayloadChunk` events carrying the function's bytes as
//! they arrive, then one `InvokeComplete` event saying how the invocation ended.
//!
//! A message is a prelude (total length, headers length, CRC32 of those 8 bytes), headers
//! (name length `u8`, name, type 7 = string, value length `u16`, value), the payload, and a
//! CRC32 of everything before it; all integers big-endian. This is what the AWS SDKs' event
//! stream readers (aws-smithy-eventstream, botocore's `EventStream`) decode.

use serde_json::json;

/// Header value type 7: a UTF-8 string.
const STRING: u8 = 7;

/// One encoded message with string `headers` and `payload`.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded_headers = Vec::new();
    for (name, value) in headers {
        // Names and values here are the emulator's own short constants, far below the u8
        // and u16 limits of the encoding.
        encoded_headers.push(name.len() as u8);
        encoded_headers.extend_from_slice(name.as_bytes());
        encoded_headers.push(STRING);
        encoded_headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded_headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + encoded_headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(encoded_headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&encoded_headers);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

/// A `PayloadChunk` event with some of the function's response bytes.
pub fn payload_chunk(bytes: &[u8]) -> Vec<u8> {
    message(
        &[
            (":event-type", "PayloadChunk"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        bytes,
    )
}

/// The `InvokeComplete` event: the error code and details when the function failed, and the
/// base64 log tail when it was asked for.
pub fn invoke_complete(error: Option<(&str, &str)>, log_result: Option<&str>) -> Vec<u8> {
    let mut payload = serde_json::Map::new();
    if let Some((code, details)) = error {
        payload.insert("ErrorCode".into(), json!(code));
        payload.insert("ErrorDetails".into(), json!(details));
    }
    if let Some(log) = log_result {
        payload.insert("LogResult".into(), json!(log));
    }
    message(
        &[
            (":event-type", "InvokeComplete"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        serde_json::Value::Object(payload).to_string().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes one message, checking both checksums: (headers, payload, bytes used).
    fn decode(buf: &[u8]) -> (Vec<(String, String)>, Vec<u8>, usize) {
        let be32 = |at: usize| u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        let total = be32(0);
        let headers_len = be32(4);
        assert_eq!(be32(8) as u32, crc32fast::hash(&buf[..8]), "prelude CRC");
        assert_eq!(
            be32(total - 4) as u32,
            crc32fast::hash(&buf[..total - 4]),
            "message CRC"
        );
        let mut headers = Vec::new();
        let mut at = 12;
        while at < 12 + headers_len {
            let name_len = buf[at] as usize;
            let name = String::from_utf8(buf[at + 1..at + 1 + name_len].to_vec()).unwrap();
            at += 1 + name_len;
            assert_eq!(buf[at], STRING);
            let value_len = u16::from_be_bytes([buf[at + 1], buf[at + 2]]) as usize;
            let value = String::from_utf8(buf[at + 3..at + 3 + value_len].to_vec()).unwrap();
            at += 3 + value_len;
            headers.push((name, value));
        }
        (headers, buf[at..total - 4].to_vec(), total)
    }

    #[test]
    fn messages_carry_headers_payload_and_valid_checksums() {
        let mut stream = payload_chunk(b"hello ");
        stream.extend(invoke_complete(
            Some(("Unhandled", "{\"errorType\":\"x\"}")),
            Some("TG9n"),
        ));
        let (headers, payload, used) = decode(&stream);
        assert_eq!(payload, b"hello ");
        assert!(headers.contains(&(":event-type".into(), "PayloadChunk".into())));
        assert!(headers.contains(&(":content-type".into(), "application/octet-stream".into())));
        let (headers, payload, _) = decode(&stream[used..]);
        assert!(headers.contains(&(":event-type".into(), "InvokeComplete".into())));
        let complete: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(complete["ErrorCode"], "Unhandled");
        assert_eq!(complete["LogResult"], "TG9n");
        let (_, payload, _) = decode(&invoke_complete(None, None));
        assert_eq!(payload, b"{}");
    }
}
