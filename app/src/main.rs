//! `roomscale`: the native Roomscale client.
//!
//! `roomscale` opens a window with the room browser; `roomscale join <room-url>`
//! goes straight into a room (a room page's http link or a `roomscale://` link;
//! `roomscale install-desktop-entry` makes this program open those on Linux).
//! With `--headless` it runs without a window: it prints who is there and what
//! is said, with `--bot` walks a scripted path so others see it move, and with
//! `--screenshot` renders what it sees offscreen.
//! `roomscale rooms` lists a server's rooms. With an OpenXR runtime and a
//! headset present, `roomscale join` goes into the headset (`--xr` insists on
//! it, `--desktop` stays flat); without one it says why and opens the window.
//! `roomscale --xr` goes into the headset with the room picker on its panel.
//! `--voice`, `--mic`, `--speaker`, `--mic-wav` or `--speaker-wav` join voice.
//! `--watch-objects` prints every change of a shared object as a JSON line, and
//! `--grab-throw <object id>` picks one up, carries it and throws it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

mod view;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use roomscale_app::client::{self, Identity, RoomClient, RoomUpdate, ServerUrl};
use roomscale_app::desktop::DesktopExit;
use roomscale_app::objects::{GrabOutcome, ObjectReply, Objects};
use roomscale_app::picker::ServerMemory;
use roomscale_app::scene::{RoomScene, tagged};
use roomscale_protocol::events::{ClientKind, RoomEventBody};
use roomscale_protocol::pose::{AvatarPose, Joint, PoseFlags};
use roomscale_protocol::presence::Role;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Parser)]
#[command(name = "roomscale", version, about = "Roomscale native client")]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
    /// The server to talk to when no room link names one.
    #[arg(
        long,
        global = true,
        default_value = "http://localhost:4000",
        value_name = "URL"
    )]
    server: String,
    /// Without a room link: go into the headset and pick a room there.
    #[arg(long, conflicts_with = "desktop")]
    xr: bool,
    /// Stay in the desktop window even when a headset is present.
    #[arg(long, global = true)]
    desktop: bool,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// List the server's rooms.
    Rooms,
    /// Join a room by its link, e.g. http://localhost:4000/rooms/<room id>
    /// or roomscale://rooms.example.org/rooms/<room id>.
    Join(Box<JoinArgs>),
    /// Make this program the handler of roomscale:// links (Linux desktop entry).
    InstallDesktopEntry {
        /// Print the entry instead of writing it.
        #[arg(long)]
        print: bool,
    },
}

#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// The room's link, as its page shows it: http(s)://… or roomscale://…
    room_url: String,
    /// Run without a window: for bots, tests and servers without a display.
    #[arg(long)]
    headless: bool,
    /// Your display name.
    #[arg(long, default_value = "Native visitor")]
    name: String,
    /// Your avatar colour, #rrggbb.
    #[arg(long, default_value = "#e0a030")]
    colour: String,
    /// Walk a circle of 1.5 m radius around the room's centre, so others see you move.
    #[arg(long, conflicts_with = "at")]
    bot: bool,
    /// Stand with your head at X,Y,Z (metres), looking along -Z. In headset
    /// mode: where the middle of your play space stands (Y is the floor's).
    #[arg(long, value_name = "X,Y,Z", value_parser = parse_point, allow_hyphen_values = true)]
    at: Option<[f32; 3]>,
    /// Headset mode: turn the play space this many degrees to the left at start.
    #[arg(
        long,
        value_name = "DEGREES",
        default_value_t = 0.0,
        allow_hyphen_values = true
    )]
    turn: f32,
    /// Say this in the chat once joined.
    #[arg(long, value_name = "TEXT")]
    say: Option<String>,
    /// Leave after this many seconds (default: stay until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    seconds: Option<f64>,
    /// Render this many frames (30 per second) of what this visitor sees, then
    /// write the last one to --screenshot (and leave, unless --seconds says how long to stay).
    #[arg(long, value_name = "N", requires = "screenshot")]
    frames: Option<u32>,
    /// Where to write the rendered view as PNG (offscreen; lavapipe works without a GPU).
    /// In headset mode: the left eye's last frame, read back from the swapchain.
    #[arg(long, value_name = "FILE")]
    screenshot: Option<std::path::PathBuf>,
    /// Instead of one screenshot: replace --screenshot with the latest frame
    /// every SECS seconds and print `wrote FILE at T s` (T: the frame's time
    /// since joining), so a watcher knows which moment each one shows.
    #[arg(
        long,
        value_name = "SECS",
        requires = "screenshot",
        conflicts_with = "frames"
    )]
    screenshot_every: Option<f32>,
    /// Go into the headset through OpenXR (without a runtime: say why, then
    /// desktop mode, or exit with status 3 when --headless).
    #[arg(long, conflicts_with = "desktop")]
    xr: bool,
    /// Headset mode: load the Vulkan validation layer and fail on any error it reports.
    #[arg(long, requires = "xr")]
    validation: bool,
    /// Headset mode: also draw this many avatars standing in rows (for benchmarks).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "xr")]
    extra_avatars: usize,
    /// Headset mode: eye image size instead of the runtime's recommendation.
    #[arg(long, value_name = "WxH", value_parser = parse_size, requires = "xr")]
    eye_size: Option<(u32, u32)>,
    /// Headset mode: print each pose sent and the frame timings at the end.
    #[arg(long, requires = "xr")]
    verbose_xr: bool,
    /// Print one JSON line per change of a shared object as this visitor
    /// shows it: `{"t_ms", "id", "position", "holder", "resting"}` (t_ms
    /// since joining; holder a user id or null).
    #[arg(long)]
    watch_objects: bool,
    /// Grab this object, carry it up and sideways for about a second, and
    /// throw it; prints `grab-throw: ...` lines as it goes.
    #[arg(long, value_name = "OBJECT_ID")]
    grab_throw: Option<String>,
    #[command(flatten)]
    voice: roomscale_app::voice::cli::VoiceArgs,
}

/// Exit status when headset mode was insisted on (`--xr --headless`) and no
/// runtime with a headset is there.
const EXIT_NO_HEADSET: i32 = 3;

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("roomscale: {error:#}");
        std::process::exit(1);
    }
}

/// Windows belong to the main thread, so the desktop mode runs there and
/// brings its own network runtime; the other commands run on a runtime here.
fn run(cli: Cli) -> Result<()> {
    // Desktop mode; with a headset present its room browser offers each room
    // in the headset, and picking one closes the window and goes in.
    let desktop = |server: ServerUrl, identity: Identity, room_id: Option<String>| {
        let headset = if cli.desktop {
            None
        } else {
            roomscale_app::xr::probe().ok().map(|runtime| runtime.name)
        };
        let exit = roomscale_app::desktop::run(roomscale_app::desktop::DesktopOptions {
            server: server.clone(),
            identity: identity.clone(),
            room_id,
            headset,
        })?;
        match exit {
            DesktopExit::Closed => Ok(()),
            DesktopExit::EnterHeadset { room_id } => {
                let runtime = roomscale_app::xr::probe().map_err(|reason| {
                    anyhow::anyhow!("headset mode is not available any more: {reason}")
                })?;
                println!("xr: runtime {}", runtime.name);
                let mut options = roomscale_app::xr::HeadsetOptions::picker(
                    server,
                    Identity {
                        kind: ClientKind::Xr,
                        ..identity
                    },
                    None,
                );
                options.room_id = Some(room_id);
                let report = roomscale_app::xr::run(runtime, options)?;
                anyhow::ensure!(report.clean_exit, "headset mode ended: {}", report.exit);
                Ok(())
            }
        }
    };
    match cli.command {
        None if cli.xr => {
            let identity = Identity {
                name: "Headset visitor".into(),
                colour: "#e0a030".into(),
                kind: ClientKind::Xr,
            };
            let runtime = roomscale_app::xr::probe()
                .map_err(|reason| anyhow::anyhow!("headset mode is not available: {reason}"))?;
            println!("xr: runtime {}", runtime.name);
            // Where the picker remembers the last server, as on a Quest.
            let memory = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config"))
                })
                .map(|dir| ServerMemory::in_dir(&dir.join("roomscale")));
            let report = roomscale_app::xr::run(
                runtime,
                roomscale_app::xr::HeadsetOptions::picker(
                    ServerUrl::parse(&cli.server)?,
                    identity,
                    memory,
                ),
            )?;
            anyhow::ensure!(report.clean_exit, "headset mode ended: {}", report.exit);
            Ok(())
        }
        None => {
            let identity = Identity {
                name: "Desktop visitor".into(),
                colour: "#e0a030".into(),
                kind: ClientKind::Desktop,
            };
            desktop(ServerUrl::parse(&cli.server)?, identity, None)
        }
        Some(Commands::Join(args)) if args.xr || (!args.headless && !cli.desktop) => {
            let (server, room_id) = roomscale_app::link::room_argument(&args.room_url)?;
            let mut identity = Identity {
                name: args.name.clone(),
                colour: args.colour.clone(),
                kind: ClientKind::Xr,
            };
            match roomscale_app::xr::probe() {
                Ok(runtime) => {
                    println!("xr: runtime {}", runtime.name);
                    headset(runtime, server, identity, room_id, &args)
                }
                Err(reason) if args.xr && args.headless => {
                    eprintln!("roomscale: headset mode is not available: {reason}");
                    std::process::exit(EXIT_NO_HEADSET);
                }
                Err(reason) => {
                    println!(
                        "roomscale: headset mode is not available: {reason}; opening desktop mode"
                    );
                    identity.kind = ClientKind::Desktop;
                    desktop(server, identity, Some(room_id))
                }
            }
        }
        Some(Commands::InstallDesktopEntry { print }) => {
            roomscale_app::link::install_desktop_entry(print)
        }
        command => tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(run_headless(cli.server, command)),
    }
}

fn headset(
    runtime: roomscale_app::xr::Runtime,
    server: ServerUrl,
    identity: Identity,
    room_id: String,
    args: &JoinArgs,
) -> Result<()> {
    let report = roomscale_app::xr::run(
        runtime,
        roomscale_app::xr::HeadsetOptions {
            server,
            identity,
            room_id: Some(room_id),
            picker_memory: None,
            seconds: args.seconds,
            screenshot: args.screenshot.clone(),
            validation: args.validation,
            extra_avatars: args.extra_avatars,
            eye_size: args.eye_size,
            print_poses: args.verbose_xr,
            start: args.at.map_or([0.0, 0.0], |[x, _, z]| [x, z]),
            turn_degrees: args.turn,
            voice: args.voice.options(false),
        },
    )?;
    println!(
        "xr: {} frames, {} rendered, eyes {}x{}, reached focused: {}; ended: {}",
        report.frames,
        report.frames_rendered,
        report.eye_size.0,
        report.eye_size.1,
        report.reached_focused,
        report.exit
    );
    if args.verbose_xr {
        let cpu = summary(&report.frame_cpu);
        let wall = summary(&report.frame_wall);
        let gpu = summary(&report.frame_gpu);
        println!("xr: frame cpu ms {cpu}; wall ms {wall}; gpu ms {gpu}");
    }
    if args.validation {
        println!("xr: vulkan validation errors: {}", report.validation_errors);
        anyhow::ensure!(
            report.validation_errors == 0,
            "Vulkan validation reported {} errors (printed above)",
            report.validation_errors
        );
    }
    anyhow::ensure!(report.clean_exit, "headset mode ended: {}", report.exit);
    Ok(())
}

/// `median p90 max (n)` of frame durations, in milliseconds.
fn summary(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "none".into();
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.3} p90 {:.3} max {:.3} (n={})",
        at(0.5),
        at(0.9),
        at(1.0),
        ms.len()
    )
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| format!("{text}: expected WIDTHxHEIGHT, e.g. 1832x1920"))?;
    let number = |n: &str| n.trim().parse::<u32>().map_err(|e| format!("{text}: {e}"));
    Ok((number(w)?, number(h)?))
}

async fn run_headless(server: String, command: Option<Commands>) -> Result<()> {
    match command {
        None | Some(Commands::Rooms) => {
            let server = ServerUrl::parse(&server)?;
            let rooms = client::list_rooms(&server).await?;
            if rooms.is_empty() {
                println!("{server} has no rooms yet; create one at {server}/rooms/new");
            }
            for room in rooms {
                println!("{server}/rooms/{}  {}", room.id, room.name);
            }
            Ok(())
        }
        Some(Commands::Join(args)) => join(*args).await,
        Some(Commands::InstallDesktopEntry { .. }) => {
            unreachable!("handled before the runtime starts")
        }
    }
}

async fn join(args: JoinArgs) -> Result<()> {
    let (server, room_id) = roomscale_app::link::room_argument(&args.room_url)?;
    let identity = Identity {
        name: args.name.clone(),
        colour: args.colour.clone(),
        kind: ClientKind::Desktop,
    };
    let mut room = RoomClient::join(&server, &room_id, identity)
        .await
        .with_context(|| format!("joining {}", args.room_url))?;
    println!(
        "joined \"{}\" as {} (slot {})",
        room.room.name,
        room.user_id,
        room.slot()
    );
    if let Some(text) = &args.say {
        let id = room.chat(text).await.context("sending the chat message")?;
        println!("said #{id}: {text}");
    }
    let voice = args
        .voice
        .start_headless(&room, &server)
        .await
        .context("joining voice")?;
    if let Some(voice) = &voice {
        tokio::spawn(roomscale_app::voice::cli::print_changes(voice.monitor()));
    }
    let started = tokio::time::Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut view = match &args.screenshot {
        Some(_) => Some(view::HeadlessView::new(640, 480).await?),
        None => None,
    };
    let mut frames_left = args.frames.unwrap_or(30);
    if let Some(every) = args.screenshot_every {
        anyhow::ensure!(
            every > 0.0,
            "--screenshot-every takes a number of seconds above 0"
        );
    }
    let mut next_screenshot = 0.0;
    let mut frame_tick = tokio::time::interval(Duration::from_millis(33));
    let mut scene = RoomScene::default();
    scene.joined(room.slot());
    let mut watcher = args.watch_objects.then(ObjectWatcher::default);
    let mut throw = args.grab_throw.clone().map(GrabThrow::new);
    // Answers to object requests, carried back into the scene.
    let (replies_tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    // Set when the server ends the visit (removed, room deleted): the
    // command fails with its reason rather than waiting out its time.
    let mut ended_by_server = None;
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = frame_tick.tick() => {
                let now = started.elapsed().as_secs_f32();
                let own = if args.bot { walking_pose(now) } else { standing_pose(args.at.unwrap_or([0.0, 1.65, 3.0])) };
                room.set_pose(own);
                let seconds = started.elapsed().as_secs_f64();
                if let Some(throw) = throw.as_mut() {
                    throw.frame(&room, scene.objects_mut(), seconds, &replies_tx).await;
                }
                pump_objects(&room, scene.objects_mut(), seconds, &replies_tx).await;
                if let Some(watcher) = watcher.as_mut() {
                    watcher.print_changes(scene.objects(), seconds);
                }
                if let Some(voice) = &voice {
                    voice.place(&scene, started.elapsed().as_secs_f64(), roomscale_app::voice::session::head_pose(&own.head));
                }
                if let (Some(view), Some(path)) = (view.as_mut(), &args.screenshot) {
                    view.draw(&own, &scene, f64::from(now))?;
                    if let Some(every) = args.screenshot_every {
                        if now >= next_screenshot {
                            next_screenshot = now + every;
                            // Whole files only: a reader never sees one half written.
                            let partial = path.with_extension("partial.png");
                            view.save(&partial)?;
                            std::fs::rename(&partial, path).with_context(|| format!("replacing {}", path.display()))?;
                            println!("wrote {} at {now:.3} s", path.display());
                        }
                    } else if frames_left > 0 {
                        frames_left -= 1;
                        if frames_left == 0 {
                            view.save(path)?;
                            println!("wrote {}", path.display());
                            if deadline.is_none() {
                                break;
                            }
                        }
                    }
                }
            }
            Some(reply) = replies.recv() => {
                scene.apply(started.elapsed().as_secs_f64(), RoomUpdate::ObjectReply(reply));
            }
            update = room.updates.recv() => match update {
                Some(update) => {
                    report(&update);
                    if let RoomUpdate::Closed(why) = &update {
                        ended_by_server = Some(roomscale_app::scene::closed_line(why));
                    }
                    scene.apply(started.elapsed().as_secs_f64(), update);
                }
                None => break,
            },
        }
    }
    if let Some(voice) = voice {
        roomscale_app::voice::cli::leave_headless(voice).await;
    }
    if let Some(why) = ended_by_server {
        anyhow::bail!("{why}");
    }
    room.leave().await;
    println!("left");
    Ok(())
}

/// Sends what this visitor's objects need this frame (the headless
/// counterpart of [`roomscale_app::net::Net::pump_objects`]); answers come
/// back through `replies`.
async fn pump_objects(
    room: &RoomClient,
    objects: &mut Objects,
    now: f64,
    replies: &UnboundedSender<ObjectReply>,
) {
    let tick = objects.tick(now);
    for release in tick.releases {
        send_release(room, release.object_id, replies).await;
    }
    for (object_id, state) in tick.rests {
        println!(
            "grab-throw: {object_id} rests at [{:.3}, {:.3}, {:.3}]",
            state.position[0], state.position[1], state.position[2]
        );
        let replies = replies.clone();
        match room.send_set_object(&object_id, &state).await {
            Ok(answer) => {
                tokio::spawn(async move {
                    if let Err(error) = answer.await {
                        let reason = error.to_string();
                        let _ = replies.send(ObjectReply::RestRefused { object_id, reason });
                    }
                });
            }
            Err(error) => {
                let reason = error.to_string();
                let _ = replies.send(ObjectReply::RestRefused { object_id, reason });
            }
        }
    }
    room.set_object_poses(tick.poses);
}

async fn send_release(
    room: &RoomClient,
    object_id: String,
    replies: &UnboundedSender<ObjectReply>,
) {
    let replies = replies.clone();
    let answer = room.send_release(&object_id).await;
    tokio::spawn(async move {
        let result = match answer {
            Ok(answer) => answer.await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            let reason = error.to_string();
            let _ = replies.send(ObjectReply::ReleaseRefused { object_id, reason });
        }
    });
}

/// `--watch-objects`: a line per object whose shown state changed by a
/// millimetre, a holder or coming to rest.
#[derive(Debug, Default)]
struct ObjectWatcher {
    last: HashMap<String, ([i32; 3], Option<String>, bool)>,
}

impl ObjectWatcher {
    fn print_changes(&mut self, objects: &Objects, now: f64) {
        for object in objects.displayed(now) {
            let mm = object.position.map(|c| (c * 1000.0).round() as i32);
            let holder = object.holder.as_ref().map(|h| h.user_id.clone());
            let seen = (mm, holder.clone(), object.resting);
            if self.last.get(&object.id) == Some(&seen) {
                continue;
            }
            self.last.insert(object.id.clone(), seen);
            let line = serde_json::json!({
                "t_ms": (now * 1000.0).round() as u64,
                "id": object.id,
                "position": object.position,
                "holder": holder,
                "resting": object.resting,
            });
            println!("{line}");
        }
    }
}

/// `--grab-throw`: waits for the object, grabs it, carries it 0.4 m up and
/// 0.5 m sideways (+X) over a second, then swings it on at about 2 m/s and
/// lets go.
#[derive(Debug)]
struct GrabThrow {
    object_id: String,
    stage: ThrowStage,
}

#[derive(Debug)]
enum ThrowStage {
    /// Until the object is known (the join's snapshot).
    Waiting,
    /// Asked at `since`, from `from`.
    Grabbing {
        since: f64,
        from: [f32; 3],
    },
    Carrying {
        since: f64,
        from: [f32; 3],
    },
    Thrown,
}

const CARRY_SECONDS: f64 = 1.0;
const SWING_SECONDS: f64 = 0.2;

impl GrabThrow {
    fn new(object_id: String) -> GrabThrow {
        GrabThrow {
            object_id,
            stage: ThrowStage::Waiting,
        }
    }

    /// Where the hand is `t` seconds into the carry: up and sideways, then a
    /// quick swing on along +X and a little up.
    fn hand(from: [f32; 3], t: f64) -> [f32; 3] {
        let carry = (t / CARRY_SECONDS).clamp(0.0, 1.0) as f32;
        let eased = carry * carry * (3.0 - 2.0 * carry);
        let swing = (t - CARRY_SECONDS).max(0.0) as f32;
        [
            from[0] + 0.5 * eased + 2.0 * swing,
            from[1] + 0.4 * eased + 1.0 * swing,
            from[2],
        ]
    }

    async fn frame(
        &mut self,
        room: &RoomClient,
        objects: &mut Objects,
        now: f64,
        replies: &UnboundedSender<ObjectReply>,
    ) {
        let id = self.object_id.clone();
        match self.stage {
            ThrowStage::Waiting => {
                let Some(shown) = objects.shown(&id, now) else {
                    return;
                };
                let Some(request) = objects.grab(&id, now) else {
                    println!("grab-throw: {id} cannot be grabbed now; trying again");
                    return;
                };
                println!("grab-throw: grabbing {id}");
                let replies = replies.clone();
                let answer = room.send_grab(&request.object_id).await;
                tokio::spawn(async move {
                    let result = match answer {
                        Ok(answer) => answer.await,
                        Err(error) => Err(error),
                    };
                    let outcome = GrabOutcome::from_result(result);
                    let _ = replies.send(ObjectReply::Grab {
                        object_id: id,
                        outcome,
                    });
                });
                self.stage = ThrowStage::Grabbing {
                    since: now,
                    from: shown.position,
                };
            }
            ThrowStage::Grabbing { since, from } => {
                objects.hold_at(&id, from, IDENTITY, now);
                let held = objects.mine().any(|mine| mine == id);
                let granted = objects.shown(&id, now).is_some_and(|o| {
                    o.holder
                        .as_ref()
                        .is_some_and(|h| Some(h.slot) == Some(room.slot()))
                });
                if held && granted {
                    println!("grab-throw: holding {id}");
                    self.stage = ThrowStage::Carrying { since: now, from };
                } else if !held {
                    // Refused (the notice says by whom): try again shortly.
                    if now - since > 1.0 {
                        self.stage = ThrowStage::Waiting;
                    }
                }
            }
            ThrowStage::Carrying { since, from } => {
                let t = now - since;
                objects.hold_at(&id, Self::hand(from, t), IDENTITY, now);
                if t >= CARRY_SECONDS + SWING_SECONDS {
                    if let Some(request) = objects.release(&id, now) {
                        println!("grab-throw: threw {id}");
                        send_release(room, request.object_id, replies).await;
                    }
                    self.stage = ThrowStage::Thrown;
                }
            }
            ThrowStage::Thrown => {}
        }
    }
}

const IDENTITY: [f32; 4] = [0.0, 0.0, 0.0, 1.0];

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn report(update: &RoomUpdate) {
    match update {
        RoomUpdate::Joined { room, slot } => println!("rejoined \"{}\" (slot {slot})", room.name),
        RoomUpdate::Presence(presence) => {
            let people: Vec<String> = presence
                .members()
                .map(|(user, m)| {
                    let mut line = format!("{} [{}]", tagged(&m.name, user), m.slot);
                    match m.role {
                        Role::Owner => line.push_str(" owner"),
                        Role::Moderator => line.push_str(" moderator"),
                        Role::Member => {}
                    }
                    if m.moderator_muted {
                        line.push_str(" muted-by-moderator");
                    }
                    line
                })
                .collect();
            println!("present: {}", people.join(", "));
        }
        RoomUpdate::Event(event) => match &event.body {
            RoomEventBody::Chat { text } => println!(
                "chat #{} {}: {text}",
                event.id,
                tagged(&event.name, &event.user_id)
            ),
            other => println!("event #{}: {other:?}", event.id),
        },
        RoomUpdate::Governance(governance) => {
            if governance.locked {
                println!("the room is locked: nobody new can join");
            }
        }
        RoomUpdate::OlderHistory { before_id } => {
            println!("older history before #{before_id} is not shown")
        }
        RoomUpdate::Moderation(notice) => {
            println!(
                "moderation: {}",
                roomscale_app::scene::moderation_line(notice)
            )
        }
        RoomUpdate::Poses { .. }
        | RoomUpdate::Objects(_)
        | RoomUpdate::ObjectHolder(_)
        | RoomUpdate::ObjectReply(_) => {}
        RoomUpdate::ConnectionLost { reason } => {
            println!("connection lost ({reason}); reconnecting")
        }
        // The reason goes to stderr when the command ends with it.
        RoomUpdate::Closed(_) => {}
    }
}

/// Standing with the head at `head`, looking along -Z, hands at the sides.
fn standing_pose(head: [f32; 3]) -> AvatarPose {
    let joint = |dx: f32, dy: f32| Joint {
        position: [head[0] + dx, head[1] + dy, head[2]],
        orientation: [0.0, 0.0, 0.0, 1.0],
    };
    AvatarPose {
        head: joint(0.0, 0.0),
        left: joint(-0.3, -0.55),
        right: joint(0.3, -0.55),
        flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
    }
}

fn parse_point(text: &str) -> Result<[f32; 3], String> {
    let parts: Vec<f32> = text
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{text}: {e}"))?;
    parts
        .try_into()
        .map_err(|_| format!("{text}: expected three numbers X,Y,Z"))
}

/// A standing avatar walking a 1.5 m circle once every 8 s, facing where it goes.
pub fn walking_pose(t: f32) -> AvatarPose {
    let angle = t * std::f32::consts::TAU / 8.0;
    let (sin, cos) = angle.sin_cos();
    let head = [1.5 * cos, 1.65, -1.5 * sin];
    // Heading along the tangent (-sin, 0, -cos) means a yaw of `angle` about +Y.
    let half = angle / 2.0;
    let facing = [0.0, half.sin(), 0.0, half.cos()];
    // The avatar's right is +X turned by the same yaw: (cos, 0, -sin).
    let hand = |side: f32| Joint {
        position: [
            head[0] + side * 0.25 * cos,
            1.1,
            head[2] - side * 0.25 * sin,
        ],
        orientation: facing,
    };
    AvatarPose {
        head: Joint {
            position: head,
            orientation: facing,
        },
        left: hand(-1.0),
        right: hand(1.0),
        flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn desktop_is_one_flag_for_every_command() {
        for args in [
            vec!["roomscale", "--desktop"],
            vec![
                "roomscale",
                "join",
                "http://localhost:4000/rooms/x",
                "--desktop",
            ],
        ] {
            let cli = Cli::try_parse_from(&args).unwrap();
            assert!(cli.desktop, "{args:?}");
        }
        let clash =
            Cli::try_parse_from(["roomscale", "join", "http://h/rooms/x", "--xr", "--desktop"]);
        assert!(clash.is_err(), "--xr and --desktop contradict each other");
    }
}
