//! The HTML around every page, and escaping.
//!
//! Pages are built with `format!`; every string that did not come from this
//! source file goes through [`escape`] on its way in, attributes included.

use std::fmt::Write as _;

/// Text made safe to put inside an element or a double- or single-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page with the site's top bar: `title` is plain text (escaped here),
/// `body` is HTML that the caller built with escaped values, put in `<main>`.
pub fn layout(title: &str, body: &str) -> String {
    frame(
        title,
        "<body>\n<nav class=\"site-nav\" aria-label=\"Site\"><a class=\"brand\" href=\"/\">Roomscale</a><a href=\"/rooms\">Rooms</a><a href=\"/rooms/new\">New room</a></nav>\n<main>\n",
        body,
        "</main>\n",
    )
}

/// The room page: the scene fills the window, so there is no top bar and no
/// `<main>` around `body`; the body has class `room-page`, which the room's part
/// of the stylesheet keys on.
pub fn room_layout(title: &str, body: &str) -> String {
    frame(title, "<body class=\"room-page\">\n", body, "")
}

/// The HTML around `body`. Every page loads `/assets/pages.js` (the small script
/// for delete confirmations and local times) and `/pages.css`, and names an
/// empty icon, so browsers do not ask for a `/favicon.ico` that does not exist.
/// Nothing inline: the Content-Security-Policy allows no inline script.
fn frame(title: &str, open: &str, body: &str, close: &str) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Roomscale</title>
<link rel="icon" href="data:,">
<script type="module" src="/assets/pages.js"></script>
<link rel="stylesheet" href="/pages.css">
</head>
{open}{body}
{close}</body>
</html>
"#,
        title = escape(title),
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x" + 'y')</script> & co"#),
            "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;)&lt;/script&gt; &amp; co"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn pages_have_the_top_bar_and_the_room_fills_the_window() {
        let page = layout("A <b>", "<p>hi</p>");
        assert!(page.contains("<title>A &lt;b&gt; · Roomscale</title>"));
        assert!(page.contains("<nav class=\"site-nav\""));
        assert!(page.contains("<main>\n<p>hi</p>\n</main>\n</body>"));
        let room = room_layout("Lobby", "<div id=\"room-root\"></div>");
        assert!(room.contains("<body class=\"room-page\">\n<div id=\"room-root\"></div>\n</body>"));
        assert!(!room.contains("<nav") && !room.contains("<main"));
        for page in [page, room] {
            assert!(page.contains("<script type=\"module\" src=\"/assets/pages.js\"></script>"));
            assert!(page.contains("<link rel=\"stylesheet\" href=\"/pages.css\">"));
            // Inline script would be refused by the Content-Security-Policy.
            assert_eq!(page.matches("<script").count(), 1);
        }
    }
}
