//! What a Quest APK must hold, checked on the text `aapt2 dump badging`,
//! `aapt2 dump xmltree --file AndroidManifest.xml` and `zipalign -c -v` print
//! for it: pure functions over that text, so the tests need no APK.
//!
//! Each [`Requirement`] names one thing a sideloaded Quest app cannot do
//! without, and a `marker`: the text that, when its lines are gone from the
//! manifest or the dumps, takes the thing away. The tests remove each in turn
//! and expect the check to name it.

/// One thing the APK must have.
#[derive(Debug)]
pub struct Requirement {
    /// What is missing, as the check reports it.
    pub what: &'static str,
    /// Text on the lines that carry this item, in the manifest source and in
    /// the dumps; a marker starting with `lib/` names an entry in the APK.
    pub marker: &'static str,
    /// For items whose line cannot simply be dropped from the manifest
    /// (`aapt2 link` refuses an activity without a name): what to change
    /// the marker into instead.
    pub break_with: Option<&'static str>,
    holds: fn(&Apk) -> bool,
}

/// The activity NativeActivity is, and the name it loads its library by.
const NATIVE_ACTIVITY: &str = "android.app.NativeActivity";
const LIB_NAME: &str = "android.app.lib_name";
const VR_CATEGORY: &str = "com.oculus.intent.category.VR";
const HEAD_TRACKING: &str = "android.hardware.vr.headtracking";
const SUPPORTED_DEVICES: &str = "com.oculus.supportedDevices";
/// Quest 2, Quest Pro, Quest 3 and Quest 3S.
pub const DEVICES: [&str; 4] = ["quest2", "questpro", "quest3", "quest3s"];
const RUNTIME_BROKER: &str = "org.khronos.openxr.runtime_broker";
const RUNTIME_SERVICE: &str = "org.khronos.openxr.OpenXRRuntimeService";
pub const LOADER_ENTRY: &str = "lib/arm64-v8a/libopenxr_loader.so";

pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        what: "the NativeActivity (activity android.app.NativeActivity)",
        marker: NATIVE_ACTIVITY,
        break_with: Some("org.roomscale.app.SomeOtherActivity"),
        holds: |apk| apk.native_activity().is_some(),
    },
    Requirement {
        what: "meta-data android.app.lib_name in the NativeActivity",
        marker: LIB_NAME,
        break_with: None,
        holds: |apk| apk.lib_name().is_some(),
    },
    Requirement {
        what: "the VR launch category com.oculus.intent.category.VR",
        marker: VR_CATEGORY,
        break_with: None,
        holds: |apk| {
            apk.native_activity().is_some_and(|activity| {
                apk.manifest
                    .descendants(activity, &["intent-filter", "category"])
                    .any(|category| {
                        apk.manifest.attr(category, "android:name") == Some(VR_CATEGORY)
                    })
            })
        },
    },
    Requirement {
        what: "head tracking required (uses-feature android.hardware.vr.headtracking)",
        marker: HEAD_TRACKING,
        break_with: None,
        holds: |apk| {
            let root = apk.manifest.root();
            apk.manifest.children(root, "uses-feature").any(|feature| {
                apk.manifest.attr(feature, "android:name") == Some(HEAD_TRACKING)
                    && apk.manifest.attr(feature, "android:required") != Some("false")
            })
        },
    },
    Requirement {
        what: "the supported headsets (meta-data com.oculus.supportedDevices: quest2|questpro|quest3|quest3s)",
        marker: SUPPORTED_DEVICES,
        break_with: None,
        holds: |apk| {
            apk.application_meta_data(SUPPORTED_DEVICES)
                .is_some_and(|value| {
                    let listed: Vec<&str> = value.split('|').map(str::trim).collect();
                    DEVICES.iter().all(|device| listed.contains(device))
                })
        },
    },
    Requirement {
        what: "permission android.permission.INTERNET",
        marker: "android.permission.INTERNET",
        break_with: None,
        holds: |apk| apk.has_permission("android.permission.INTERNET"),
    },
    Requirement {
        what: "permission android.permission.RECORD_AUDIO",
        marker: "android.permission.RECORD_AUDIO",
        break_with: None,
        holds: |apk| apk.has_permission("android.permission.RECORD_AUDIO"),
    },
    Requirement {
        what: "permission org.khronos.openxr.permission.OPENXR",
        marker: "org.khronos.openxr.permission.OPENXR",
        break_with: None,
        holds: |apk| apk.has_permission("org.khronos.openxr.permission.OPENXR"),
    },
    Requirement {
        what: "the OpenXR runtime broker in <queries> (provider org.khronos.openxr.runtime_broker)",
        marker: RUNTIME_BROKER,
        break_with: None,
        holds: |apk| {
            apk.queries(&["provider"]).any(|provider| {
                apk.manifest
                    .attr(provider, "android:authorities")
                    .is_some_and(|a| a.split(';').any(|a| a == RUNTIME_BROKER))
            })
        },
    },
    Requirement {
        what: "the OpenXR runtime service in <queries> (intent org.khronos.openxr.OpenXRRuntimeService)",
        marker: RUNTIME_SERVICE,
        break_with: None,
        holds: |apk| {
            apk.queries(&["intent", "action"])
                .any(|action| apk.manifest.attr(action, "android:name") == Some(RUNTIME_SERVICE))
        },
    },
    Requirement {
        what: "the app library lib/arm64-v8a/lib<lib_name>.so",
        marker: "lib/arm64-v8a/libroomscale.so",
        break_with: None,
        holds: |apk| {
            apk.lib_name().is_some_and(|name| {
                let entry = format!("lib/arm64-v8a/lib{name}.so");
                apk.entries.contains(&entry)
            }) && apk
                .badging
                .lines()
                .any(|l| l.trim() == "native-code: 'arm64-v8a'")
        },
    },
    Requirement {
        what: "the OpenXR loader lib/arm64-v8a/libopenxr_loader.so",
        marker: LOADER_ENTRY,
        break_with: None,
        holds: |apk| apk.entries.iter().any(|e| e == LOADER_ENTRY),
    },
];

/// What the three dumps say about one APK.
#[derive(Debug)]
pub struct Apk {
    badging: String,
    manifest: Manifest,
    entries: Vec<String>,
}

impl Apk {
    /// `badging` and `xmltree` as aapt2 prints them; `zipalign` as
    /// `zipalign -c -v -p 4` prints the APK's entries.
    pub fn from_dumps(badging: &str, xmltree: &str, zipalign: &str) -> Apk {
        Apk {
            badging: badging.to_string(),
            manifest: Manifest::parse(xmltree),
            entries: zip_entries(zipalign),
        }
    }

    /// What `aapt2 dump badging` said.
    pub fn badging(&self) -> &str {
        &self.badging
    }

    /// The name NativeActivity loads `lib<name>.so` by.
    pub fn lib_name(&self) -> Option<&str> {
        let activity = self.native_activity()?;
        self.manifest
            .children(activity, "meta-data")
            .find(|m| self.manifest.attr(*m, "android:name") == Some(LIB_NAME))
            .and_then(|m| self.manifest.attr(m, "android:value"))
            .filter(|name| !name.is_empty())
    }

    fn native_activity(&self) -> Option<usize> {
        let root = self.manifest.root();
        self.manifest
            .descendants(root, &["application", "activity"])
            .find(|a| self.manifest.attr(*a, "android:name") == Some(NATIVE_ACTIVITY))
    }

    fn application_meta_data(&self, name: &str) -> Option<&str> {
        let root = self.manifest.root();
        self.manifest
            .descendants(root, &["application", "meta-data"])
            .find(|m| self.manifest.attr(*m, "android:name") == Some(name))
            .and_then(|m| self.manifest.attr(m, "android:value"))
    }

    fn has_permission(&self, permission: &str) -> bool {
        let line = format!("uses-permission: name='{permission}'");
        self.badging.lines().any(|l| l.trim() == line)
    }

    fn queries<'a>(&'a self, path: &'a [&'a str]) -> impl Iterator<Item = usize> + 'a {
        let root = self.manifest.root();
        self.manifest
            .children(root, "queries")
            .flat_map(move |queries| self.manifest.descendants(queries, path))
    }
}

/// What of [`REQUIREMENTS`] the APK lacks; empty when it is fit for a Quest.
pub fn missing(apk: &Apk) -> Vec<&'static str> {
    REQUIREMENTS
        .iter()
        .filter(|requirement| !(requirement.holds)(apk))
        .map(|requirement| requirement.what)
        .collect()
}

/// Whether `line` carries `marker` as a whole name (so `...permission.OPENXR`
/// does not match a line about `...permission.OPENXR_SYSTEM`).
pub fn mentions(line: &str, marker: &str) -> bool {
    line.match_indices(marker).any(|(at, _)| {
        !line[at + marker.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// The manifest as `aapt2 dump xmltree` prints it: elements with their
/// attributes, nested by indentation.
#[derive(Debug, Default)]
struct Manifest {
    elements: Vec<Element>,
}

#[derive(Debug)]
struct Element {
    tag: String,
    parent: Option<usize>,
    attrs: Vec<(String, String)>,
}

impl Manifest {
    fn parse(xmltree: &str) -> Manifest {
        let mut manifest = Manifest::default();
        // (indent, element) of the open elements, innermost last.
        let mut open: Vec<(usize, usize)> = Vec::new();
        for line in xmltree.lines() {
            let indent = line.len() - line.trim_start().len();
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("E: ") {
                while open.last().is_some_and(|(i, _)| *i >= indent) {
                    open.pop();
                }
                let tag = rest.split(" (line=").next().unwrap_or(rest).to_string();
                manifest.elements.push(Element {
                    tag,
                    parent: open.last().map(|(_, e)| *e),
                    attrs: Vec::new(),
                });
                open.push((indent, manifest.elements.len() - 1));
            } else if let Some(rest) = line.strip_prefix("A: ")
                && let Some(element) = manifest.elements.last_mut()
                && let Some((key, value)) = rest.split_once('=')
            {
                element.attrs.push((attr_name(key), attr_value(value)));
            }
        }
        manifest
    }

    /// The `<manifest>` element (a manifest without one has nothing).
    fn root(&self) -> usize {
        self.elements
            .iter()
            .position(|e| e.tag == "manifest" && e.parent.is_none())
            .unwrap_or(usize::MAX)
    }

    fn attr(&self, element: usize, name: &str) -> Option<&str> {
        self.elements
            .get(element)?
            .attrs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn children<'a>(&'a self, parent: usize, tag: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.elements
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.parent == Some(parent) && e.tag == tag)
            .map(|(i, _)| i)
    }

    /// Elements reached from `from` through children with these tags in turn.
    fn descendants<'a>(
        &'a self,
        from: usize,
        path: &'a [&'a str],
    ) -> Box<dyn Iterator<Item = usize> + 'a> {
        match path.split_first() {
            None => Box::new(std::iter::once(from)),
            Some((tag, rest)) => Box::new(
                self.children(from, tag)
                    .flat_map(move |child| self.descendants(child, rest)),
            ),
        }
    }
}

/// `http://schemas.android.com/apk/res/android:name(0x01010003)` -> `android:name`.
fn attr_name(key: &str) -> String {
    let key = key.split('(').next().unwrap_or(key);
    match key.strip_prefix("http://schemas.android.com/apk/res/android:") {
        Some(name) => format!("android:{name}"),
        None => key.to_string(),
    }
}

/// `"text" (Raw: "text")` -> `text`; `true` -> `true`.
fn attr_value(value: &str) -> String {
    match value.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default().to_string(),
        None => value.split(" (Raw").next().unwrap_or(value).to_string(),
    }
}

/// The entry names in `zipalign -c -v` output (`   8192 lib/x.so (OK)`).
fn zip_entries(zipalign: &str) -> Vec<String> {
    zipalign
        .lines()
        .filter_map(|line| {
            let (offset, rest) = line.trim().split_once(' ')?;
            offset.parse::<u64>().ok()?;
            let (name, _) = rest.rsplit_once(" (")?;
            Some(name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dumps of an APK `cargo xtask apk` built from android/AndroidManifest.xml.
    const BADGING: &str = include_str!("testdata/badging.txt");
    const XMLTREE: &str = include_str!("testdata/xmltree.txt");
    const ZIPALIGN: &str = include_str!("testdata/zipalign.txt");

    fn without(text: &str, marker: &str) -> String {
        text.lines()
            .filter(|line| !mentions(line, marker))
            .map(|line| format!("{line}\n"))
            .collect()
    }

    #[test]
    fn the_packaged_manifest_has_everything() {
        let apk = Apk::from_dumps(BADGING, XMLTREE, ZIPALIGN);
        assert_eq!(missing(&apk), Vec::<&str>::new());
        assert_eq!(apk.lib_name(), Some("roomscale"));
    }

    #[test]
    fn each_missing_item_is_named() {
        for requirement in REQUIREMENTS {
            let apk = Apk::from_dumps(
                &without(BADGING, requirement.marker),
                &without(XMLTREE, requirement.marker),
                &without(ZIPALIGN, requirement.marker),
            );
            let missing = missing(&apk);
            assert!(
                missing.contains(&requirement.what),
                "without {:?} the check says {missing:?}",
                requirement.marker
            );
        }
    }

    #[test]
    fn head_tracking_must_be_required() {
        let optional = XMLTREE.replace(
            "android:required(0x0101028e)=true",
            "android:required(0x0101028e)=false",
        );
        let apk = Apk::from_dumps(BADGING, &optional, ZIPALIGN);
        assert!(missing(&apk).iter().any(|m| m.contains(HEAD_TRACKING)));
    }

    #[test]
    fn every_headset_must_be_listed() {
        for device in DEVICES {
            let fewer: Vec<&str> = DEVICES.iter().copied().filter(|d| *d != device).collect();
            let xmltree = XMLTREE.replace("quest2|questpro|quest3|quest3s", &fewer.join("|"));
            let apk = Apk::from_dumps(BADGING, &xmltree, ZIPALIGN);
            assert!(
                missing(&apk).iter().any(|m| m.contains(SUPPORTED_DEVICES)),
                "without {device}"
            );
        }
    }

    #[test]
    fn markers_match_whole_names() {
        let check = |line: &str, marker: &str, expected: bool| {
            assert_eq!(mentions(line, marker), expected, "{line:?} / {marker:?}");
        };
        check(
            "name='org.khronos.openxr.permission.OPENXR'",
            "org.khronos.openxr.permission.OPENXR",
            true,
        );
        check(
            "name='org.khronos.openxr.permission.OPENXR_SYSTEM'",
            "org.khronos.openxr.permission.OPENXR",
            false,
        );
        check("quest3|quest3s", "quest3", true);
        check(
            "lib/arm64-v8a/libroomscale.so (OK)",
            "lib/arm64-v8a/libroomscale.so",
            true,
        );
        check("android.app.lib_names", "android.app.lib_name", false);
    }

    #[test]
    fn xmltree_lines_are_read() {
        let check = |key: &str, value: &str, expected: (&str, &str)| {
            assert_eq!(
                (attr_name(key).as_str(), attr_value(value).as_str()),
                expected
            );
        };
        check(
            "http://schemas.android.com/apk/res/android:name(0x01010003)",
            "\"android.app.NativeActivity\" (Raw: \"android.app.NativeActivity\")",
            ("android:name", "android.app.NativeActivity"),
        );
        check(
            "http://schemas.android.com/apk/res/android:required(0x0101028e)",
            "true",
            ("android:required", "true"),
        );
        check(
            "package",
            "\"org.roomscale.app\" (Raw: \"org.roomscale.app\")",
            ("package", "org.roomscale.app"),
        );
        assert_eq!(
            zip_entries(
                "Verifying alignment of a.apk (4)...\n    8192 lib/arm64-v8a/libx.so (OK)\n      49 AndroidManifest.xml (OK - compressed)\nVerification successful\n"
            ),
            vec!["lib/arm64-v8a/libx.so", "AndroidManifest.xml"]
        );
    }
}
