//! The room picker for a headset with no room link to follow (a standalone
//! Quest, or `roomscale --xr` on a PC): a server address typed on a keypad,
//! that server's rooms from `GET /api/rooms`, and the last server remembered
//! in a file, drawn as an egui page on the panel in the world.
//!
//! The picker only decides: typing, reading an address, what to remember, and
//! which request a click makes ([`PickerRequest`]). The network side carries
//! the requests out and hands back rooms and notices; the tests drive it
//! without a network or a GPU.

use std::path::{Path, PathBuf};

use crate::client::{RoomListing, ServerUrl};

/// The keypad's rows. A headset has no keyboard; these are what a server
/// address is made of (host names, IPv4 addresses, a port).
const KEY_ROWS: [&str; 4] = ["1234567890", "qwertyuiop", "asdfghjkl-", "zxcvbnm.:/"];

/// What a click on the picker asks of the network side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickerRequest {
    /// Talk to this server from now on and list its rooms.
    Connect(ServerUrl),
    /// List the current server's rooms again.
    Refresh,
    /// Join this room (its id) on the current server.
    Join(String),
}

/// A key on the picker's keypad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Backspace,
    Clear,
}

/// The picker's state between frames.
#[derive(Debug)]
pub struct RoomPicker {
    /// The server the room list comes from.
    server: ServerUrl,
    /// The address on the keypad while it is open.
    editing: Option<String>,
    rooms: Vec<RoomListing>,
    /// True between asking for the list and hearing back.
    loading: bool,
    status: String,
    memory: Option<ServerMemory>,
}

impl RoomPicker {
    /// A picker on `server`, or on the server `memory` remembers when it
    /// holds one. The caller asks for the first room list
    /// ([`RoomPicker::server`] names the server to ask).
    pub fn new(server: ServerUrl, memory: Option<ServerMemory>) -> RoomPicker {
        let remembered = memory.as_ref().and_then(ServerMemory::load);
        RoomPicker {
            server: remembered.unwrap_or(server),
            editing: None,
            rooms: Vec::new(),
            loading: true,
            status: String::new(),
            memory,
        }
    }

    /// The server whose rooms are (or are about to be) listed.
    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    pub fn rooms(&self) -> &[RoomListing] {
        &self.rooms
    }

    /// The address typed so far, while the keypad is open.
    pub fn address(&self) -> Option<&str> {
        self.editing.as_deref()
    }

    pub fn status(&self) -> &str {
        &self.status
    }

    /// The server's rooms arrived.
    pub fn set_rooms(&mut self, rooms: Vec<RoomListing>) {
        self.rooms = rooms;
        self.loading = false;
        self.status = if self.rooms.is_empty() {
            format!("{} has no rooms yet; create one in a browser", self.server)
        } else {
            String::new()
        };
    }

    /// A notice from the network side (e.g. the server did not answer).
    pub fn set_status(&mut self, status: impl Into<String>) {
        self.loading = false;
        self.status = status.into();
    }

    /// Opens the keypad on the current address.
    pub fn edit(&mut self) {
        self.editing = Some(self.server.to_string());
    }

    /// Closes the keypad, keeping the current server.
    pub fn cancel(&mut self) {
        self.editing = None;
    }

    /// One key pressed on the open keypad.
    pub fn key(&mut self, key: Key) {
        let Some(address) = self.editing.as_mut() else {
            return;
        };
        match key {
            Key::Char(c) => address.push(c),
            Key::Backspace => {
                address.pop();
            }
            Key::Clear => address.clear(),
        }
    }

    /// Reads the typed address. When it is one, the picker switches to it,
    /// remembers it, and returns the request that lists its rooms; when not,
    /// the keypad stays open and the status says what is wrong.
    pub fn submit(&mut self) -> Option<PickerRequest> {
        let typed = self.editing.as_deref()?;
        match parse_address(typed) {
            Ok(server) => {
                self.editing = None;
                self.server = server.clone();
                self.rooms.clear();
                self.loading = true;
                self.status = String::new();
                if let Some(memory) = &self.memory
                    && let Err(error) = memory.save(&server)
                {
                    self.status = error;
                }
                Some(PickerRequest::Connect(server))
            }
            Err(error) => {
                self.status = error;
                None
            }
        }
    }

    /// Changes when anything the page shows changes, so the panel is
    /// painted again only then.
    pub fn fingerprint(&self, hasher: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        self.server.to_string().hash(hasher);
        self.editing.hash(hasher);
        for room in &self.rooms {
            (&room.id, &room.name).hash(hasher);
        }
        (self.loading, &self.status).hash(hasher);
    }

    /// Draws the picker into `ui`; returns what a click asked for.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<PickerRequest> {
        let mut request = None;
        ui.heading("Join a room");
        if self.editing.is_some() {
            self.keypad_ui(ui, &mut request);
        } else {
            ui.horizontal(|ui| {
                ui.label(format!("Server: {}", self.server));
                if ui.button("Change").clicked() {
                    self.edit();
                }
                if ui.button("Refresh").clicked() {
                    self.loading = true;
                    request = Some(PickerRequest::Refresh);
                }
            });
            ui.separator();
            if self.loading {
                ui.label("Asking for the room list…");
            }
            egui::ScrollArea::vertical().show(ui, |ui| {
                for room in &self.rooms {
                    let label = if room.description.is_empty() {
                        room.name.clone()
                    } else {
                        format!("{} — {}", room.name, room.description)
                    };
                    if ui
                        .add_sized([ui.available_width(), 32.0], egui::Button::new(label))
                        .clicked()
                    {
                        request = Some(PickerRequest::Join(room.id.clone()));
                    }
                }
            });
        }
        if !self.status.is_empty() {
            ui.separator();
            ui.small(&self.status);
        }
        request
    }

    fn keypad_ui(&mut self, ui: &mut egui::Ui, request: &mut Option<PickerRequest>) {
        let typed = self.editing.clone().unwrap_or_default();
        ui.label("Server address (e.g. 192.168.1.20:4000):");
        ui.monospace(format!("{typed}▏"));
        let key_size = egui::vec2(36.0, 30.0);
        for row in KEY_ROWS {
            ui.horizontal(|ui| {
                for c in row.chars() {
                    if ui
                        .add_sized(key_size, egui::Button::new(c.to_string()))
                        .clicked()
                    {
                        self.key(Key::Char(c));
                    }
                }
            });
        }
        ui.horizontal(|ui| {
            if ui
                .add_sized(key_size * egui::vec2(2.0, 1.0), egui::Button::new("⌫"))
                .clicked()
            {
                self.key(Key::Backspace);
            }
            if ui.button("Clear").clicked() {
                self.key(Key::Clear);
            }
            if ui.button("Connect").clicked() {
                *request = self.submit();
            }
            if ui.button("Cancel").clicked() {
                self.cancel();
            }
        });
    }
}

/// Reads a server address as a person types it: `http://` may be left out,
/// and a path after the host (a room link's `/rooms/...`) is ignored.
pub fn parse_address(typed: &str) -> Result<ServerUrl, String> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Err("type the server's address, e.g. 192.168.1.20:4000".into());
    }
    let url = if typed.contains("://") {
        typed.to_string()
    } else {
        format!("http://{typed}")
    };
    // A stray character would otherwise become part of a host name that
    // fails later, far from the keypad.
    let authority = url.split("://").nth(1).unwrap_or_default();
    let authority = authority.split('/').next().unwrap_or_default();
    if let Some(bad) = authority
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_:[]".contains(*c)))
    {
        return Err(format!(
            "{typed}: {bad:?} cannot be part of a server address"
        ));
    }
    ServerUrl::parse(&url).map_err(|error| error.to_string())
}

/// The last server the picker connected to, kept in one small file (on a
/// Quest: in the app's private files directory).
#[derive(Debug, Clone)]
pub struct ServerMemory {
    path: PathBuf,
}

impl ServerMemory {
    /// The file name inside the directory the caller chooses.
    pub const FILE_NAME: &'static str = "last-server.txt";

    pub fn in_dir(dir: &Path) -> ServerMemory {
        ServerMemory {
            path: dir.join(Self::FILE_NAME),
        }
    }

    /// The remembered server, when the file is there and holds one.
    pub fn load(&self) -> Option<ServerUrl> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        parse_address(&text).ok()
    }

    pub fn save(&self, server: &ServerUrl) -> Result<(), String> {
        if let Some(dir) = self.path.parent() {
            // A first start may find the files directory not yet made.
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&self.path, format!("{server}\n")).map_err(|error| {
            format!(
                "could not remember the server in {}: {error}",
                self.path.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> ServerUrl {
        ServerUrl::parse(url).unwrap()
    }

    /// A fresh directory for one test's memory file.
    fn scratch_dir(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("roomscale-picker-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn addresses_are_read_as_people_type_them() {
        let check = |typed: &str, expected: Result<&str, &str>| {
            let got = parse_address(typed).map(|s| s.to_string());
            match (&got, expected) {
                (Ok(url), Ok(want)) => assert_eq!(url, want, "{typed:?}"),
                (Err(error), Err(part)) => {
                    assert!(error.contains(part), "{typed:?}: {error:?} lacks {part:?}")
                }
                _ => panic!("{typed:?}: got {got:?}, expected {expected:?}"),
            }
        };
        check("192.168.1.20:4000", Ok("http://192.168.1.20:4000"));
        check(" rooms.lan:4000 ", Ok("http://rooms.lan:4000"));
        check("rooms.lan", Ok("http://rooms.lan:80"));
        check("http://h:4000/rooms/abc", Ok("http://h:4000"));
        check("", Err("type the server's address"));
        check("h:port", Err("port must be a number"));
        check("https://h", Err("plain http"));
        check(":4000", Err("host is missing"));
        check("my server:4000", Err("' ' cannot be part"));
    }

    #[test]
    fn typing_connecting_and_joining_make_requests() {
        let dir = scratch_dir("typing");
        let mut picker = RoomPicker::new(
            server("http://localhost:4000"),
            Some(ServerMemory::in_dir(&dir)),
        );
        assert_eq!(picker.server().to_string(), "http://localhost:4000");
        // Keys do nothing while the keypad is closed.
        picker.key(Key::Char('x'));
        assert_eq!(picker.address(), None);

        picker.edit();
        picker.key(Key::Clear);
        for c in "10.0.0.9:4001x".chars() {
            picker.key(Key::Char(c));
        }
        picker.key(Key::Backspace);
        assert_eq!(picker.address(), Some("10.0.0.9:4001"));
        assert_eq!(
            picker.submit(),
            Some(PickerRequest::Connect(server("http://10.0.0.9:4001")))
        );
        assert_eq!(picker.address(), None, "the keypad closes");

        picker.set_rooms(vec![RoomListing {
            id: "r1".into(),
            name: "Lobby".into(),
            description: String::new(),
        }]);
        assert_eq!(picker.rooms().len(), 1);
        assert_eq!(picker.status(), "");

        // A bad address keeps the keypad open and says why.
        picker.edit();
        picker.key(Key::Clear);
        ":4000".chars().for_each(|c| picker.key(Key::Char(c)));
        assert_eq!(picker.submit(), None);
        assert!(picker.status().contains("host is missing"));
        picker.cancel();
        assert_eq!(picker.server().to_string(), "http://10.0.0.9:4001");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_last_server_is_remembered_across_starts() {
        let dir = scratch_dir("memory");
        let memory = || Some(ServerMemory::in_dir(&dir.join("files")));
        let default = server("http://localhost:4000");
        let mut first = RoomPicker::new(default.clone(), memory());
        assert_eq!(first.server(), &default, "nothing remembered yet");
        first.edit();
        first.key(Key::Clear);
        "quest-host:4000"
            .chars()
            .for_each(|c| first.key(Key::Char(c)));
        assert!(first.submit().is_some());

        let second = RoomPicker::new(default.clone(), memory());
        assert_eq!(second.server().to_string(), "http://quest-host:4000");

        // A file that holds no address is ignored.
        std::fs::write(dir.join("files").join(ServerMemory::FILE_NAME), "??").unwrap();
        assert_eq!(
            RoomPicker::new(default.clone(), memory()).server(),
            &default
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The picker's page in an egui context the size of the headset
    /// panel's page (640x480 pixels at 1.25 pixels a point), clicked the way
    /// the laser clicks it: pointer events, no GPU.
    struct Page {
        ctx: egui::Context,
        picker: RoomPicker,
        last: Option<egui::FullOutput>,
    }

    impl Page {
        const POINTS: egui::Vec2 = egui::vec2(512.0, 384.0);

        fn new(picker: RoomPicker) -> Page {
            let mut page = Page {
                ctx: egui::Context::default(),
                picker,
                last: None,
            };
            // egui sizes some widgets from the frame before.
            page.frame(Vec::new());
            page.frame(Vec::new());
            page
        }

        fn frame(&mut self, events: Vec<egui::Event>) -> Option<PickerRequest> {
            let input = egui::RawInput {
                screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, Self::POINTS)),
                events,
                ..Default::default()
            };
            let mut request = None;
            let picker = &mut self.picker;
            let mut output = self.ctx.run_ui(input, |ui| {
                egui::CentralPanel::default().show(ui, |ui| request = picker.ui(ui));
            });
            // Nothing is painted here; the fonts' texture is not needed.
            output.textures_delta.clear();
            self.last = Some(output);
            request
        }

        /// Where the last frame drew `label`.
        fn find(&self, label: &str) -> egui::Pos2 {
            fn texts(shape: &egui::Shape, found: &mut Vec<(String, egui::Pos2)>) {
                match shape {
                    egui::Shape::Text(text) => found.push((
                        text.galley.text().to_string(),
                        text.pos + text.galley.rect.center().to_vec2(),
                    )),
                    egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| texts(s, found)),
                    _ => {}
                }
            }
            let mut found = Vec::new();
            for clipped in &self.last.as_ref().expect("a frame ran").shapes {
                texts(&clipped.shape, &mut found);
            }
            found
                .iter()
                .find(|(text, _)| text == label)
                .map(|(_, at)| *at)
                .unwrap_or_else(|| panic!("no {label:?} on the page; it shows {found:?}"))
        }

        /// Press and release on `label`; what the release asked for.
        fn click(&mut self, label: &str) -> Option<PickerRequest> {
            let at = self.find(label);
            let button = |pressed| egui::Event::PointerButton {
                pos: at,
                button: egui::PointerButton::Primary,
                pressed,
                modifiers: Default::default(),
            };
            let pressed = self.frame(vec![egui::Event::PointerMoved(at), button(true)]);
            assert_eq!(pressed, None, "a press alone asks for nothing");
            let released = self.frame(vec![button(false)]);
            self.frame(Vec::new());
            released
        }

        /// Everything drawn lies on the page.
        fn assert_fits(&self) {
            let page = egui::Rect::from_min_size(egui::Pos2::ZERO, Self::POINTS);
            for clipped in &self.last.as_ref().expect("a frame ran").shapes {
                let bounds = clipped.shape.visual_bounding_rect();
                if bounds.is_positive() {
                    assert!(
                        page.expand(1.0).contains_rect(bounds),
                        "{bounds:?} is off the {page:?} page"
                    );
                }
            }
        }
    }

    #[test]
    fn the_page_is_worked_with_clicks_and_fits_the_panel() {
        let mut page = Page::new(RoomPicker::new(server("http://localhost:4000"), None));
        page.picker.set_rooms(vec![
            RoomListing {
                id: "r1".into(),
                name: "Lobby".into(),
                description: "where everyone starts".into(),
            },
            RoomListing {
                id: "r2".into(),
                name: "Workshop".into(),
                description: String::new(),
            },
        ]);
        page.frame(Vec::new());
        page.assert_fits();
        assert_eq!(
            page.click("Workshop"),
            Some(PickerRequest::Join("r2".into()))
        );
        assert_eq!(page.click("Refresh"), Some(PickerRequest::Refresh));

        assert_eq!(page.click("Change"), None);
        assert_eq!(page.picker.address(), Some("http://localhost:4000"));
        page.assert_fits();
        page.click("Clear");
        for key in [
            "1", "0", ".", "0", ".", "0", ".", "7", ":", "4", "0", "0", "0",
        ] {
            page.click(key);
        }
        page.click("⌫");
        page.click("1");
        assert_eq!(page.picker.address(), Some("10.0.0.7:4001"));
        assert_eq!(
            page.click("Connect"),
            Some(PickerRequest::Connect(server("http://10.0.0.7:4001")))
        );
        assert_eq!(page.picker.address(), None, "the keypad closes");
        page.find("Server: http://10.0.0.7:4001");
    }

    #[test]
    fn the_fingerprint_follows_what_the_page_shows() {
        use std::hash::Hasher;
        let print = |picker: &RoomPicker| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            picker.fingerprint(&mut hasher);
            hasher.finish()
        };
        let mut picker = RoomPicker::new(server("http://localhost:4000"), None);
        let before = print(&picker);
        assert_eq!(before, print(&picker));
        picker.set_status("the server did not answer");
        let after_status = print(&picker);
        assert_ne!(before, after_status);
        picker.edit();
        assert_ne!(after_status, print(&picker));
    }
}
