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
