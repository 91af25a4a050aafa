//! The OpenXR session lifecycle as a state machine without I/O: session state
//! events, exit requests, runtime errors and the time go in; the calls the
//! OpenXR glue must make (begin, end, request exit, quit) come out.
//!
//! The rules follow the OpenXR 1.0 specification (§9.3 "Session Lifecycle"):
//! READY → `xrBeginSession`; STOPPING → `xrEndSession`; EXITING or
//! LOSS_PENDING → destroy the session and leave. An exit the user asks for
//! while the session runs goes through `xrRequestExitSession` so the runtime
//! can wind down (STOPPING → IDLE → EXITING); if it does not within
//! [`EXIT_DEADLINE_S`], or the user asks twice, the app leaves anyway.
//!
//! `xrEndSession` is only legal in STOPPING, and `xrDestroySession` in any
//! state, so a session still running when the machine quits (a lost runtime, a
//! failed call, an exit the runtime ignored) is destroyed without being ended.

use std::fmt;

/// How long the runtime gets to end the session after `xrRequestExitSession`
/// before the app leaves anyway, in seconds.
pub const EXIT_DEADLINE_S: f64 = 2.0;

/// How many illegal transitions the machine keeps until they are taken; more
/// are counted but not kept, so a runtime that floods them cannot grow memory.
const MAX_KEPT_ILLEGAL: usize = 64;

/// The session states of `XrSessionState`, named as the specification names
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// No event seen yet (`XR_SESSION_STATE_UNKNOWN`).
    Unknown,
    /// Created or stopped; waiting for the runtime to say it is ready.
    Idle,
    /// The runtime wants `xrBeginSession` and the frame loop to start.
    Ready,
    /// Frames are synchronised with the display but not shown.
    Synchronized,
    /// Frames are shown, but another app (e.g. a system menu) has input.
    Visible,
    /// Frames are shown and this app has input.
    Focused,
    /// The runtime wants `xrEndSession`.
    Stopping,
    /// The session is being lost; it must be destroyed.
    LossPending,
    /// The runtime wants the app to destroy the session and leave.
    Exiting,
}

impl SessionState {
    /// Every state, for tables and exhaustive tests.
    pub const ALL: [SessionState; 9] = [
        SessionState::Unknown,
        SessionState::Idle,
        SessionState::Ready,
        SessionState::Synchronized,
        SessionState::Visible,
        SessionState::Focused,
        SessionState::Stopping,
        SessionState::LossPending,
        SessionState::Exiting,
    ];

    /// Whether the runtime may move from `self` straight to `to`. The runtime
    /// only moves between adjacent states of the specification's lifecycle
    /// diagram; LOSS_PENDING may come from any state but EXITING.
    pub fn can_move_to(self, to: SessionState) -> bool {
        use SessionState::*;
        matches!(
            (self, to),
            (Unknown, Idle)
                | (Idle, Ready)
                | (Idle, Exiting)
                | (Ready, Synchronized)
                | (Synchronized, Visible)
                | (Synchronized, Stopping)
                | (Visible, Synchronized)
                | (Visible, Focused)
                | (Focused, Visible)
                | (Stopping, Idle)
        ) || (to == LossPending && !matches!(self, LossPending | Exiting))
    }
}

/// A state change the runtime reported that the specification does not allow.
/// The machine follows it anyway (the runtime's word is what counts) and keeps
/// it for the glue to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before the event.
    pub from: SessionState,
    /// The state the event reported.
    pub to: SessionState,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} -> {:?}", self.from, self.to)
    }
}

/// What happened, as the OpenXR glue saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `XrEventDataSessionStateChanged` with the new state.
    StateChanged(SessionState),
    /// `XrEventDataInstanceLossPending`: the runtime is going away.
    InstanceLossPending,
    /// The user wants to leave (Ctrl-C, a "leave" button, a time limit).
    ExitRequested,
    /// An OpenXR call failed (e.g. `XR_ERROR_INSTANCE_LOST`,
    /// `XR_ERROR_RUNTIME_FAILURE`); the text says which call and how.
    RuntimeError(String),
    /// The time now, in seconds on any clock that does not go backwards.
    /// Feed it every loop iteration so the exit deadline can pass.
    Tick(f64),
}

/// What the glue must do, in the order returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Call `xrBeginSession`, then run the frame loop
    /// ([`SessionMachine::should_run_frame_loop`]).
    BeginSession,
    /// Call `xrEndSession`; stop the frame loop.
    EndSession,
    /// Call `xrRequestExitSession`; keep running until the runtime stops the
    /// session.
    RequestExit,
    /// Destroy the session (whatever its state) and leave headset mode,
    /// telling the user `reason`. Nothing follows a `Quit`.
    Quit {
        /// Why, in words a person can act on.
        reason: ExitReason,
    },
}

/// Why headset mode ended. `Display` gives a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The user asked to leave and the runtime ended the session, or it had
    /// not begun yet.
    UserLeft,
    /// The runtime ended the session on its own (e.g. the app was closed from
    /// the headset's system menu).
    RuntimeEnded,
    /// The session reached LOSS_PENDING (e.g. the headset was unplugged).
    SessionLost,
    /// `XrEventDataInstanceLossPending`: the runtime is shutting down or
    /// updating.
    InstanceLost,
    /// The runtime did not end the session within [`EXIT_DEADLINE_S`] of
    /// `xrRequestExitSession`.
    ExitTimedOut,
    /// The user asked to leave a second time before the runtime ended the
    /// session.
    ExitForced,
    /// An OpenXR call failed; the text says which.
    RuntimeError(String),
}

impl ExitReason {
    /// Whether the session ended the way the specification intends (so the
    /// process can exit with success); false when it was cut short.
    pub fn is_clean(&self) -> bool {
        matches!(self, ExitReason::UserLeft | ExitReason::RuntimeEnded)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::UserLeft => write!(f, "left headset mode"),
            ExitReason::RuntimeEnded => write!(
                f,
                "the OpenXR runtime ended the session (closed from the headset's menu, or the runtime stopped); start Roomscale again to return"
            ),
            ExitReason::SessionLost => write!(
                f,
                "the OpenXR runtime lost the session (session loss pending), often because the headset was disconnected; headset mode ended — reconnect the headset and start again, or use desktop mode"
            ),
            ExitReason::InstanceLost => write!(
                f,
                "the OpenXR runtime is going away (instance loss pending); headset mode ended — restart the runtime or use desktop mode"
            ),
            ExitReason::ExitTimedOut => write!(
                f,
                "the runtime did not end the session within {EXIT_DEADLINE_S} s of the request to leave; left anyway"
            ),
            ExitReason::ExitForced => write!(
                f,
                "left at a second request before the runtime ended the session"
            ),
            ExitReason::RuntimeError(error) => write!(
                f,
                "the OpenXR runtime failed ({error}); headset mode ended — restart the runtime, or use desktop mode"
            ),
        }
    }
}

/// Where an exit the user asked for stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Exit {
    /// Nobody asked.
    NotAsked,
    /// `RequestExit` was returned; `since` is the time of the request, or
    /// `None` until the first [`Input::Tick`] after it.
    Requested { since: Option<f64> },
}

/// The session lifecycle. Feed every [`Input`] to [`SessionMachine::handle`]
/// and carry out the returned [`Action`]s in order.
#[derive(Debug, Clone)]
pub struct SessionMachine {
    state: SessionState,
    /// Between `BeginSession` and `EndSession`.
    running: bool,
    exit: Exit,
    /// The latest time from [`Input::Tick`].
    now: Option<f64>,
    /// Set once `Quit` was returned; the machine then ignores every input.
    quit: Option<ExitReason>,
    illegal: Vec<Transition>,
    illegal_count: usize,
}

impl Default for SessionMachine {
    fn default() -> Self {
        SessionMachine::new()
    }
}

impl SessionMachine {
    /// A machine for a session just created (state UNKNOWN, not running).
    pub fn new() -> SessionMachine {
        SessionMachine {
            state: SessionState::Unknown,
            running: false,
            exit: Exit::NotAsked,
            now: None,
            quit: None,
            illegal: Vec::new(),
            illegal_count: 0,
        }
    }

    /// Takes one input and returns what to do about it, in order. After a
    /// [`Action::Quit`] it returns nothing, whatever comes in.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        if self.quit.is_some() {
            return Vec::new();
        }
        let mut actions = Vec::new();
        match input {
            Input::StateChanged(to) => self.state_changed(to, &mut actions),
            Input::InstanceLossPending => self.quit(ExitReason::InstanceLost, &mut actions),
            Input::RuntimeError(error) => {
                self.quit(ExitReason::RuntimeError(error), &mut actions);
            }
            Input::ExitRequested => match self.exit {
                Exit::Requested { .. } => self.quit(ExitReason::ExitForced, &mut actions),
                // `xrRequestExitSession` is only legal on a running session;
                // one that never began (or already ended) has nothing to wind
                // down.
                Exit::NotAsked if !self.running => self.quit(ExitReason::UserLeft, &mut actions),
                Exit::NotAsked => {
                    self.exit = Exit::Requested { since: self.now };
                    actions.push(Action::RequestExit);
                }
            },
            Input::Tick(now) => self.tick(now, &mut actions),
        }
        actions
    }

    /// The runtime's latest reported state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Whether the session is running: `BeginSession` was returned and its
    /// `EndSession` not yet.
    pub fn session_running(&self) -> bool {
        self.running
    }

    /// Whether to call `xrWaitFrame` / `xrBeginFrame` / `xrEndFrame` now. This
    /// holds from `BeginSession` on — already in READY, because the runtime
    /// moves to SYNCHRONIZED only once frames arrive — until `EndSession` or
    /// `Quit`.
    pub fn should_run_frame_loop(&self) -> bool {
        self.quit.is_none()
            && self.running
            && matches!(
                self.state,
                SessionState::Ready
                    | SessionState::Synchronized
                    | SessionState::Visible
                    | SessionState::Focused
            )
    }

    /// Whether the session's frames are shown (VISIBLE or FOCUSED). Whether a
    /// given frame is drawn is still the runtime's `shouldRender`.
    pub fn is_visible(&self) -> bool {
        self.should_run_frame_loop()
            && matches!(self.state, SessionState::Visible | SessionState::Focused)
    }

    /// Whether this app has the user's input (FOCUSED).
    pub fn accepts_input(&self) -> bool {
        self.should_run_frame_loop() && self.state == SessionState::Focused
    }

    /// Whether to send the user's pose to the room: only while FOCUSED. A
    /// headset taken off (or a system menu opened) drops the session to
    /// VISIBLE or SYNCHRONIZED, and the others should then see the avatar
    /// stand still rather than follow a headset lying on a desk.
    pub fn sends_poses(&self) -> bool {
        self.accepts_input()
    }

    /// Whether the user asked to leave and the machine is waiting for the
    /// runtime to end the session.
    pub fn exit_requested(&self) -> bool {
        matches!(self.exit, Exit::Requested { .. })
    }

    /// Why the machine quit, once it has.
    pub fn exit_reason(&self) -> Option<&ExitReason> {
        self.quit.as_ref()
    }

    /// Returns the illegal transitions seen since the last call (at most
    /// 64 of them), for the glue to log.
    pub fn take_illegal_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.illegal)
    }

    /// How many illegal transitions were seen in all, kept or not.
    pub fn illegal_transition_count(&self) -> usize {
        self.illegal_count
    }

    fn state_changed(&mut self, to: SessionState, actions: &mut Vec<Action>) {
        let from = self.state;
        if !from.can_move_to(to) {
            self.illegal_count += 1;
            if self.illegal.len() < MAX_KEPT_ILLEGAL {
                self.illegal.push(Transition { from, to });
            }
        }
        self.state = to;
        match to {
            // After an exit request the runtime must not ask to begin again;
            // if it does anyway, beginning would only delay leaving.
            SessionState::Ready if !self.running && !self.exit_requested() => {
                self.running = true;
                actions.push(Action::BeginSession);
            }
            SessionState::Stopping if self.running => {
                self.running = false;
                actions.push(Action::EndSession);
            }
            SessionState::Exiting => {
                let reason = if self.exit_requested() {
                    ExitReason::UserLeft
                } else {
                    ExitReason::RuntimeEnded
                };
                self.quit(reason, actions);
            }
            SessionState::LossPending => self.quit(ExitReason::SessionLost, actions),
            _ => {}
        }
    }

    fn tick(&mut self, now: f64, actions: &mut Vec<Action>) {
        if !now.is_finite() {
            return;
        }
        // A clock that steps back must not make the deadline recede.
        let now = self.now.map_or(now, |before| before.max(now));
        self.now = Some(now);
        if let Exit::Requested { since } = self.exit {
            let since = since.unwrap_or(now);
            self.exit = Exit::Requested { since: Some(since) };
            if now - since >= EXIT_DEADLINE_S {
                self.quit(ExitReason::ExitTimedOut, actions);
            }
        }
    }

    fn quit(&mut self, reason: ExitReason, actions: &mut Vec<Action>) {
        self.quit = Some(reason.clone());
        actions.push(Action::Quit { reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState::*;

    /// Parses a script of inputs: state names in lower case, `loss`
    /// (instance loss pending), `exit`, `error`, and `t=<seconds>`.
    fn inputs(script: &str) -> Vec<Input> {
        script
            .split_whitespace()
            .map(|word| match word {
                "unknown" => Input::StateChanged(Unknown),
                "idle" => Input::StateChanged(Idle),
                "ready" => Input::StateChanged(Ready),
                "sync" => Input::StateChanged(Synchronized),
                "visible" => Input::StateChanged(Visible),
                "focused" => Input::StateChanged(Focused),
                "stopping" => Input::StateChanged(Stopping),
                "loss_pending" => Input::StateChanged(LossPending),
                "exiting" => Input::StateChanged(Exiting),
                "loss" => Input::InstanceLossPending,
                "exit" => Input::ExitRequested,
                "error" => Input::RuntimeError("xrWaitFrame: XR_ERROR_INSTANCE_LOST".into()),
                tick => Input::Tick(
                    tick.strip_prefix("t=")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or_else(|| panic!("unknown script word {tick:?}")),
                ),
            })
            .collect()
    }

    fn short(action: &Action) -> String {
        match action {
            Action::BeginSession => "begin".into(),
            Action::EndSession => "end".into(),
            Action::RequestExit => "request_exit".into(),
            Action::Quit { reason } => format!(
                "quit:{}",
                match reason {
                    ExitReason::UserLeft => "user_left",
                    ExitReason::RuntimeEnded => "runtime_ended",
                    ExitReason::SessionLost => "session_lost",
                    ExitReason::InstanceLost => "instance_lost",
                    ExitReason::ExitTimedOut => "timed_out",
                    ExitReason::ExitForced => "forced",
                    ExitReason::RuntimeError(_) => "error",
                }
            ),
        }
    }

    fn run(script: &str) -> (SessionMachine, String) {
        let mut machine = SessionMachine::new();
        let mut done = Vec::new();
        for input in inputs(script) {
            done.extend(machine.handle(input).iter().map(short));
        }
        (machine, done.join(" "))
    }

    /// Runs `script` and compares the actions returned, in order.
    fn check(script: &str, expected: &str) {
        let (_, actions) = run(script);
        assert_eq!(actions, expected, "script: {script}");
    }

    #[test]
    fn lifecycle() {
        // A normal start: the runtime walks up to FOCUSED.
        check("idle ready sync visible focused", "begin");
        // Headset taken off and put back on; nothing to call.
        check(
            "idle ready sync visible focused visible sync visible focused",
            "begin",
        );
        // The runtime stops the session (e.g. the headset went idle), then
        // restarts it.
        check(
            "idle ready sync stopping idle ready sync",
            "begin end begin",
        );
        // The runtime ends the session on its own.
        check(
            "idle ready sync stopping idle exiting",
            "begin end quit:runtime_ended",
        );
        // Exiting from IDLE before anything began.
        check("idle exiting", "quit:runtime_ended");
        // Session and instance loss, from any state.
        check(
            "idle ready sync visible loss_pending",
            "begin quit:session_lost",
        );
        check("idle loss_pending", "quit:session_lost");
        check("idle ready sync focused loss", "begin quit:instance_lost");
        check("loss", "quit:instance_lost");
        // A failing call ends headset mode.
        check("idle ready error", "begin quit:error");
        check("error", "quit:error");
    }

    #[test]
    fn leaving() {
        // Leave while focused: ask the runtime, end on STOPPING, quit on EXITING.
        check(
            "t=0 idle ready sync visible focused exit t=0.5 visible sync stopping idle exiting",
            "begin request_exit end quit:user_left",
        );
        // Before the session began there is nothing to wind down.
        check("exit", "quit:user_left");
        check("t=0 idle exit", "quit:user_left");
        // Between the end of one session and the next begin, the same.
        check("idle ready stopping idle exit", "begin end quit:user_left");
        // A second request leaves at once.
        check(
            "idle ready sync exit exit",
            "begin request_exit quit:forced",
        );
        // The runtime ignores the request: leave after the deadline, not before.
        check(
            "t=10 idle ready sync exit t=11 t=11.99",
            "begin request_exit",
        );
        check(
            "t=10 idle ready sync exit t=11 t=12",
            "begin request_exit quit:timed_out",
        );
        // Without a tick before the request, the deadline counts from the
        // first tick after it.
        check("idle ready exit t=100 t=101.9", "begin request_exit");
        check(
            "idle ready exit t=100 t=102",
            "begin request_exit quit:timed_out",
        );
        // A clock stepping back does not postpone the deadline.
        check(
            "t=5 idle ready exit t=6 t=1 t=7",
            "begin request_exit quit:timed_out",
        );
        // Ticks without a request never quit.
        check("t=0 idle ready t=100 t=1000", "begin");
        // A READY after the request does not begin again.
        check(
            "t=0 idle ready exit stopping idle ready t=1",
            "begin request_exit end",
        );
        // Nothing follows a quit.
        check("exit idle ready exit error loss", "quit:user_left");
        check("idle exiting ready", "quit:runtime_ended");
    }

    #[test]
    fn exit_reasons_read_as_advice() {
        let lost = ExitReason::InstanceLost.to_string();
        assert!(lost.contains("instance loss pending"), "{lost}");
        assert!(
            lost.contains("restart the runtime or use desktop mode"),
            "{lost}"
        );
        let timed_out = ExitReason::ExitTimedOut.to_string();
        assert!(
            timed_out.contains("the runtime did not end the session within 2 s"),
            "{timed_out}"
        );
        let error = ExitReason::RuntimeError("xrEndFrame: XR_ERROR_RUNTIME_FAILURE".into());
        assert!(error.to_string().contains("XR_ERROR_RUNTIME_FAILURE"));
        assert!(ExitReason::UserLeft.is_clean() && ExitReason::RuntimeEnded.is_clean());
        assert!(!ExitReason::ExitTimedOut.is_clean() && !error.is_clean());
    }

    /// Runs `script` and compares the queries afterwards, as
    /// `frame_loop visible input poses`, each 0 or 1.
    fn check_queries(script: &str, expected: &str) {
        let (machine, _) = run(script);
        let bit = |b: bool| if b { "1" } else { "0" };
        let got = [
            machine.should_run_frame_loop(),
            machine.is_visible(),
            machine.accepts_input(),
            machine.sends_poses(),
        ]
        .map(bit)
        .join(" ");
        assert_eq!(got, expected, "script: {script}");
    }

    #[test]
    fn queries() {
        check_queries("", "0 0 0 0");
        check_queries("idle", "0 0 0 0");
        // READY after begin: frames must flow for the runtime to synchronise.
        check_queries("idle ready", "1 0 0 0");
        check_queries("idle ready sync", "1 0 0 0");
        check_queries("idle ready sync visible", "1 1 0 0");
        check_queries("idle ready sync visible focused", "1 1 1 1");
        // Headset taken off: poses stop, frames go on.
        check_queries("idle ready sync visible focused visible", "1 1 0 0");
        check_queries("idle ready sync visible focused visible sync", "1 0 0 0");
        check_queries("idle ready sync visible focused visible focused", "1 1 1 1");
        // While leaving, frames go on until the runtime stops the session.
        check_queries("idle ready sync visible focused exit", "1 1 1 1");
        check_queries("idle ready sync stopping", "0 0 0 0");
        check_queries("idle ready sync visible focused loss", "0 0 0 0");
        check_queries("idle ready sync visible focused error", "0 0 0 0");
        // A runtime that jumps to FOCUSED without READY never got a begin, so
        // no frame calls (they would fail with XR_ERROR_SESSION_NOT_RUNNING).
        check_queries("idle focused", "0 0 0 0");
    }

    #[test]
    fn illegal_transitions_are_kept_not_fatal() {
        let (mut machine, actions) = run("idle focused ready sync sync stopping");
        assert_eq!(actions, "begin end");
        let seen: Vec<String> = machine
            .take_illegal_transitions()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            seen,
            [
                "Idle -> Focused",
                "Focused -> Ready",
                "Synchronized -> Synchronized"
            ]
        );
        assert!(machine.take_illegal_transitions().is_empty());
        assert_eq!(machine.illegal_transition_count(), 3);

        // A flood is counted but only the first few kept.
        let mut machine = SessionMachine::new();
        for _ in 0..1000 {
            machine.handle(Input::StateChanged(Unknown));
        }
        assert_eq!(machine.take_illegal_transitions().len(), MAX_KEPT_ILLEGAL);
        assert_eq!(machine.illegal_transition_count(), 1000);
    }

    #[test]
    fn legal_transitions_match_the_lifecycle_diagram() {
        let legal: Vec<String> = SessionState::ALL
            .iter()
            .flat_map(|&from| {
                SessionState::ALL
                    .iter()
                    .filter(move |&&to| from.can_move_to(to))
                    .map(move |&to| Transition { from, to }.to_string())
            })
            .collect();
        assert_eq!(
            legal,
            [
                "Unknown -> Idle",
                "Unknown -> LossPending",
                "Idle -> Ready",
                "Idle -> LossPending",
                "Idle -> Exiting",
                "Ready -> Synchronized",
                "Ready -> LossPending",
                "Synchronized -> Visible",
                "Synchronized -> Stopping",
                "Synchronized -> LossPending",
                "Visible -> Synchronized",
                "Visible -> Focused",
                "Visible -> LossPending",
                "Focused -> Visible",
                "Focused -> LossPending",
                "Stopping -> Idle",
                "Stopping -> LossPending",
            ]
        );
    }

    /// Every input the exhaustive walks choose from. Each tick moves time on
    /// by 1.5 s, so two ticks pass the exit deadline and one does not.
    fn alphabet() -> Vec<Input> {
        let mut all: Vec<Input> = SessionState::ALL
            .iter()
            .map(|&s| Input::StateChanged(s))
            .collect();
        all.extend([
            Input::InstanceLossPending,
            Input::ExitRequested,
            Input::RuntimeError("failed".into()),
            Input::Tick(f64::NAN), // replaced by the walk with the next time
        ]);
        all
    }

    /// What the walk knows about one path, besides the machine.
    #[derive(Clone)]
    struct Path {
        machine: SessionMachine,
        began: usize,
        ended: usize,
        quit_while_running: bool,
        quits: usize,
        time: f64,
    }

    impl Path {
        fn feed(&mut self, input: &Input, trail: &[Input]) {
            let input = match input {
                Input::Tick(_) => {
                    self.time += 1.5;
                    Input::Tick(self.time)
                }
                other => other.clone(),
            };
            for action in self.machine.handle(input) {
                assert_eq!(self.quits, 0, "an action after quit: {trail:?}");
                match action {
                    Action::BeginSession => {
                        assert_eq!(self.began, self.ended, "begin while running: {trail:?}");
                        self.began += 1;
                    }
                    Action::EndSession => {
                        assert_eq!(self.began, self.ended + 1, "end without begin: {trail:?}");
                        self.ended += 1;
                    }
                    Action::RequestExit => {
                        assert!(self.began > self.ended, "exit request while not running");
                    }
                    Action::Quit { reason } => {
                        self.quits += 1;
                        if self.began > self.ended {
                            self.quit_while_running = true;
                            // With a runtime that keeps to the diagram, only a
                            // forced quit leaves a session running.
                            let runtime_misbehaved = self.machine.illegal_transition_count() > 0;
                            assert!(
                                !reason.is_clean() || runtime_misbehaved,
                                "clean quit of a running session: {trail:?}"
                            );
                        }
                    }
                }
            }
            let m = &self.machine;
            assert_eq!(m.session_running(), self.began > self.ended, "{trail:?}");
            assert!(!m.should_run_frame_loop() || m.session_running());
            assert!(!m.is_visible() || m.should_run_frame_loop());
            assert!(!m.sends_poses() || m.is_visible());
            assert_eq!(m.sends_poses(), m.accepts_input());
            if self.quits > 0 {
                assert!(!m.should_run_frame_loop());
                assert!(m.exit_reason().is_some());
            }
        }

        /// Walks the runtime legally from where it is to STOPPING, as a runtime
        /// that ends the session would, and checks that a running session is
        /// then ended exactly once.
        fn finish(mut self, trail: &[Input]) {
            if self.quits > 0 {
                return;
            }
            let rest: &[SessionState] = match self.machine.state() {
                Focused => &[Visible, Synchronized, Stopping],
                Visible => &[Synchronized, Stopping],
                Ready => &[Synchronized, Stopping],
                Synchronized => &[Stopping],
                _ => &[],
            };
            for &state in rest {
                self.feed(&Input::StateChanged(state), trail);
            }
            if self.quits == 0 && self.machine.state() == Stopping {
                assert_eq!(self.began, self.ended, "begin never ended: {trail:?}");
            }
        }
    }

    /// Walks every sequence of up to `depth` more inputs; returns how many
    /// sequences it checked.
    fn walk(path: &Path, alphabet: &[Input], trail: &mut Vec<Input>, depth: usize) -> usize {
        path.clone().finish(trail);
        let mut walked = 1;
        if depth == 0 {
            return walked;
        }
        for input in alphabet {
            let mut next = path.clone();
            trail.push(input.clone());
            next.feed(input, trail);
            walked += walk(&next, alphabet, trail, depth - 1);
            trail.pop();
        }
        walked
    }

    fn start() -> Path {
        Path {
            machine: SessionMachine::new(),
            began: 0,
            ended: 0,
            quit_while_running: false,
            quits: 0,
            time: 0.0,
        }
    }

    /// Every sequence of up to five inputs, legal or not: begin and end
    /// alternate, nothing follows a quit, the queries agree with each other,
    /// and a session left running is ended once the runtime stops it.
    #[test]
    fn every_short_sequence_keeps_begin_and_end_paired() {
        let walked = walk(&start(), &alphabet(), &mut Vec::new(), 5);
        assert_eq!(walked, (0..=5).map(|n| 13usize.pow(n)).sum::<usize>());
    }

    /// Longer walks in which the runtime keeps to the lifecycle diagram:
    /// a quit with the session still running is always a forced one.
    #[test]
    fn every_legal_runtime_walk_keeps_begin_and_end_paired() {
        fn legal_walk(path: &Path, trail: &mut Vec<Input>, depth: usize, exits: &mut usize) {
            path.clone().finish(trail);
            if depth == 0 || path.quits > 0 {
                return;
            }
            let state = path.machine.state();
            let mut next_inputs: Vec<Input> = SessionState::ALL
                .iter()
                .filter(|&&to| state.can_move_to(to))
                .map(|&to| Input::StateChanged(to))
                .collect();
            next_inputs.extend([Input::ExitRequested, Input::Tick(f64::NAN)]);
            for input in next_inputs {
                let mut next = path.clone();
                trail.push(input.clone());
                next.feed(&input, trail);
                if next.quits > 0 && !next.quit_while_running {
                    *exits += 1;
                }
                legal_walk(&next, trail, depth - 1, exits);
                trail.pop();
            }
        }
        let mut clean_exits = 0;
        legal_walk(&start(), &mut Vec::new(), 10, &mut clean_exits);
        // The walk must have reached the interesting ends, not just started.
        assert!(clean_exits > 100, "{clean_exits} clean exits");
    }
}
