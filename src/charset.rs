//! Text decoding by the rules a browser follows closely enough for links and
//! quotes: a byte-order mark, then the declared `charset`, then (for HTML) a
//! `<meta>` declaration in the first 2 KiB, then UTF-8. Labels are resolved
//! by encoding_rs (the WHATWG Encoding Standard), so `latin1` means
//! windows-1252 as it does in browsers.

/// Decodes with the charset the response declared, or the page's `<meta>`,
/// or a byte-order mark; UTF-8 otherwise.
pub fn decode(body: &[u8], content_type: Option<&str>, sniff_html: bool) -> String {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(body) {
        return encoding
            .decode_without_bom_handling(&body[bom..])
            .0
            .into_owned();
    }
    let declared = content_type.and_then(|ct| {
        ct.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim().eq_ignore_ascii_case("charset"))
                .then(|| v.trim().trim_matches(['"', '\'']).to_string())
        })
    });
    let sniffed = || {
        let head = String::from_utf8_lossy(&body[..body.len().min(2048)]).to_ascii_lowercase();
        let at = head.find("charset=")? + "charset=".len();
        let rest = head[at..].trim_start_matches(['"', '\'', ' ']);
        let label: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
            .collect();
        (!label.is_empty()).then_some(label)
    };
    let label = declared.or_else(|| if sniff_html { sniffed() } else { None });
    let encoding = label
        .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode_without_bom_handling(body).0.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_then_sniffed_then_utf8() {
        // "Bab Alnairab" in Arabic, windows-1256.
        let (arabic, _, _) = encoding_rs::WINDOWS_1256.encode("باب النيرب");
        assert_eq!(
            decode(&arabic, Some("text/html; charset=windows-1256"), true),
            "باب النيرب"
        );
        let page = [b"<meta charset=\"windows-1256\"><p>".as_slice(), &arabic].concat();
        assert!(decode(&page, Some("text/html"), true).ends_with("باب النيرب"));
        assert_eq!(decode("café".as_bytes(), None, true), "café");
        assert_eq!(
            decode(b"caf\xe9", Some("text/css; charset=ISO-8859-1"), false),
            "café"
        );
    }
}
