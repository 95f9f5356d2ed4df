//! The grammar of image references and registry hosts (distribution's `reference` package),
//! checked by hand when the settings are read, so that a malformed `--base-image` or
//! `--registry` is refused before anything compiles. (oci-client's parser compiles a regular
//! expression first, which costs more than a build with nothing to do.)

/// Checks an image reference: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`. `Err` says what is wrong.
pub fn check_reference(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("it is empty".into());
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    // A tag is after the last `:` that comes after the last `/` (a port's `:` is before it).
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let is_domain = components.len() > 1
        && (first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()));
    if is_domain {
        check_host(first)?;
        components.remove(0);
    }
    for component in components {
        check_path_component(component)?;
    }
    Ok(())
}

/// Checks a registry host: `HOST[:PORT]`, HOST a domain name, an IPv4 address or `[IPv6]`.
pub fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{host}` opens `[` without closing it"))?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{v6}` is not an IPv6 address"))?;
        (None, after.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{port}` in `{host}` is not a port"));
        }
    }
    if let Some(name) = name {
        if name.is_empty() {
            return Err(format!("`{host}` has no host name"));
        }
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "`{host}` is not a host name: each part between dots is letters, digits and \
                     inner `-`"
                ));
            }
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a tag: letters, digits, `_`, `.` and `-`, at most 128, not starting \
             with `.` or `-`"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    match digest.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{digest}` is not a digest: sha256: and 64 lowercase hex digits"
        )),
    }
}

/// A path component: lowercase letters and digits, separated by one `.`, one or two `_`, or
/// any number of `-`.
fn check_path_component(component: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{component}` is not a repository name part: lowercase letters and digits, \
             separated by `.`, `_`, `__` or dashes"
        ))
    };
    if component.is_empty() {
        return bad();
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked_as_distribution_reads_them() {
        for good in [
            "public.ecr.aws/lambda/provided:al2",
            "public.ecr.aws/lambda/provided:al2023",
            "127.0.0.1:5000/bases/provided:al2",
            "localhost/x",
            "ubuntu",
            "library/ubuntu:22.04",
            "my-registry.example.com:8443/a__b/c-d.e:v1.2_3",
            "[::1]:5000/x/y:1",
            "x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_reference(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("Foo Bar", "`Foo Bar` is not a repository name part"),
            ("", "empty"),
            ("ubuntu:", "is not a tag"),
            ("ubuntu:-x", "is not a tag"),
            ("Ubuntu", "repository name part"),
            ("a//b", "repository name part"),
            ("reg.example.com:port/x", "is not a port"),
            ("x@sha256:abc", "is not a digest"),
            ("bad_host.example.com/x", "is not a host name"),
        ] {
            let err = check_reference(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn hosts_are_names_or_addresses_with_an_optional_port() {
        for good in [
            "127.0.0.1:5000",
            "registry.example.com",
            "[::1]:443",
            "localhost:5000",
        ] {
            assert_eq!(check_host(good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "host:", "host:99999999", "http://host", "[::1"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
