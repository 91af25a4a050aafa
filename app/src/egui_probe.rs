//! For tests of egui pages run without a GPU: the texts a frame's shapes show,
//! and where, so a test can read a page and click on its labels.

/// Every text among `shape` (and the shapes it nests) with its screen rectangle.
pub(crate) fn collect_texts(shape: &egui::Shape, texts: &mut Vec<(String, egui::Rect)>) {
    match shape {
        egui::Shape::Text(text) => texts.push((
            text.galley.text().to_string(),
            text.galley.rect.translate(text.pos.to_vec2()),
        )),
        egui::Shape::Vec(shapes) => {
            for shape in shapes {
                collect_texts(shape, texts);
            }
        }
        _ => {}
    }
}

/// The centre of the `nth` text that reads `label`; panics with every text
/// shown when there is none, so a failing test says what the page offered.
pub(crate) fn centre_of(texts: &[(String, egui::Rect)], label: &str, nth: usize) -> egui::Pos2 {
    texts
        .iter()
        .filter(|(text, _)| text == label)
        .nth(nth)
        .unwrap_or_else(|| panic!("no {label:?} #{nth} on the page: {texts:?}"))
        .1
        .center()
}

/// The input of one click at `at`: move there and press, then release.
pub(crate) fn click_at(at: egui::Pos2) -> [Vec<egui::Event>; 2] {
    let button = |pressed| egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: Default::default(),
    };
    [
        vec![egui::Event::PointerMoved(at), button(true)],
        vec![button(false)],
    ]
}
