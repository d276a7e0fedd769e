//! Item 5 of issue 11: kill -9 the operator at random moments while it creates datastores,
//! starts jobs and deletes datastores, restart it, and count what went wrong in HealthLake.
//!
//! One in-memory Kubernetes API and one emulator serve the whole drill; the emulator's clock
//! runs `clock_speed` times faster than real time and every operator interval flag is divided by
//! the same factor, so that a datastore is created in a quarter of a second and a job runs in
//! about half a second. A run is one small story, on objects named after it:
//! - `create`: a FHIRDatastore and a job on it; once the job is Ready, both are deleted;
//! - `delete-while-starting`: the same, but both are deleted a random moment after the
//!   datastore is Ready, while the job is being started;
//! - `delete-while-creating`: a FHIRDatastore alone, deleted a random moment after it was
//!   created (before, during or after its CreateFHIRDatastore).
//!
//! `in_flight` runs go on at once while the operator lives a random (seeded) time, is killed
//! with SIGKILL and is started again at once, until every run has ended. Then the operator is
//! left alive for a while and the drill checks, against everything the emulator ever reported
//! (its state is read every few seconds, so that purged DELETED datastores still count):
//! no owner with two datastores, no job object with two HealthLake jobs, no datastore of a
//! deleted FHIRDatastore left undeleted, no object left with a deletionTimestamp, every run
//! ended.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use crate::latency::scaled_intervals;
use crate::objects::{self, Kind, NAMESPACE};
use crate::processes::{Emulator, LIMITER_LIFTED, Operator, Sandbox, Workspace};

/// Settings of the crash drill.
pub struct CrashSettings {
    /// Runs (stories) in all.
    pub runs: usize,
    /// Seed of the kill moments and of the runs' random waits.
    pub seed: u64,
    /// How many times faster than real time the emulator's clock and the operator's intervals run.
    pub clock_speed: u32,
    /// Runs going on at once.
    pub in_flight: usize,
    /// The longest the operator lives before it is killed (each life is uniform in 50 ms..this).
    pub longest_life: Duration,
}

/// `BENCH_CRASH_SEED`, or one taken from the time.
pub fn seed_from_env() -> anyhow::Result<u64> {
    match std::env::var("BENCH_CRASH_SEED") {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("BENCH_CRASH_SEED={value:?} is not a whole number")),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64)),
    }
}

/// SplitMix64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration uniform in `low..high`.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let fraction = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        low + (high.saturating_sub(low)).mul_f64(fraction)
    }
}

/// What a run is waiting for; read by the killer to say what each kill interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    NotStarted = 0,
    /// The FHIRDatastore exists and is not Ready yet.
    Creating = 1,
    /// The job exists and is not Ready yet.
    Starting = 2,
    /// Deletion was asked; the objects are not gone yet.
    Deleting = 3,
    /// Every object is gone.
    Ended = 4,
    /// The run did not end in time.
    Unconverged = 5,
}

/// The three stories of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Story {
    Create,
    DeleteWhileStarting,
    DeleteWhileCreating,
}

impl Story {
    fn of(run: usize) -> Self {
        match run % 4 {
            2 => Story::DeleteWhileStarting,
            3 => Story::DeleteWhileCreating,
            _ => Story::Create,
        }
    }

    fn job(self, run: usize) -> Option<Kind> {
        match self {
            Story::DeleteWhileCreating => None,
            _ if run % 8 < 4 => Some(Kind::Import),
            _ => Some(Kind::Export),
        }
    }
}

/// What one list of the cluster showed of an object.
#[derive(Clone, Debug)]
struct Shown {
    ready: bool,
    deleting: bool,
}

/// The cluster as last listed, with the moment that list began.
#[derive(Clone, Default)]
struct View {
    objects: HashMap<(Kind, String), Shown>,
    listed_from: Option<Instant>,
}

type SharedView = Arc<Mutex<View>>;

fn look(view: &SharedView) -> View {
    view.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

const KINDS: [Kind; 3] = [Kind::Datastore, Kind::Import, Kind::Export];

/// Lists the three kinds again and again into `view`.
async fn follow(client: kube::Client, view: SharedView) {
    loop {
        let started = Instant::now();
        let mut objects = HashMap::new();
        let mut complete = true;
        for kind in KINDS {
            match kind.api(&client).list(&ListParams::default()).await {
                Ok(list) => {
                    for object in list.items {
                        let shown = Shown {
                            ready: objects::is_ready(&object),
                            deleting: object.metadata.deletion_timestamp.is_some(),
                        };
                        objects.insert((kind, object.metadata.name.unwrap_or_default()), shown);
                    }
                }
                Err(_) => complete = false,
            }
        }
        if complete {
            *view.lock().unwrap_or_else(|e| e.into_inner()) = View {
                objects,
                listed_from: Some(started),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything the emulator reported over the drill: datastores by id (owner tag, status) and
/// jobs by id (name).
#[derive(Default)]
struct AwsSeen {
    datastores: BTreeMap<String, (String, String)>,
    jobs: BTreeMap<String, String>,
}

impl AwsSeen {
    async fn read(&mut self, emulator: &Emulator) -> anyhow::Result<()> {
        let state = emulator.state().await?;
        let region = &state["regions"]["us-east-1"];
        if let Some(datastores) = region["datastores"].as_object() {
            for (id, record) in datastores {
                let owner = record["tags"][OWNER_TAG].as_str().unwrap_or("").to_owned();
                let status = record["status"].as_str().unwrap_or("").to_owned();
                self.datastores.insert(id.clone(), (owner, status));
            }
        }
        if let Some(jobs) = region["jobs"].as_object() {
            for (id, record) in jobs {
                let name = record["name"].as_str().unwrap_or("").to_owned();
                self.jobs.insert(id.clone(), name);
            }
        }
        Ok(())
    }
}

/// The owner tag the operator puts on every datastore it creates: `<namespace>/<name>`.
const OWNER_TAG: &str = "healthlake.fhir-operator.io/owner";

fn run_name(run: usize) -> String {
    format!("crash-{run:04}")
}

/// The longest a run may take before it counts as not converged.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs item 5; answers the `crash_drill` object of results.json.
pub async fn run(workspace: &Workspace, settings: &CrashSettings) -> anyhow::Result<Value> {
    eprintln!(
        "crash: {} runs, {} at once, seed {} (BENCH_CRASH_SEED={} repeats the kill moments)",
        settings.runs, settings.in_flight, settings.seed, settings.seed
    );
    let speed = f64::from(settings.clock_speed.max(1));
    let (sandbox, client) = Sandbox::start(workspace, "crash").await?;
    let max_datastores = (settings.runs + 10).to_string();
    let clock_speed = settings.clock_speed.max(1).to_string();
    let emulator = Emulator::start(
        workspace,
        "crash",
        &[
            "--no-quotas",
            "--max-datastores",
            &max_datastores,
            "--job-concurrency",
            "datastore",
            "--clock-speed",
            &clock_speed,
        ],
    )
    .await?;
    let scaled = scaled_intervals(speed);
    let mut flags: Vec<String> = scaled.clone();
    flags.extend(LIMITER_LIFTED.iter().map(|flag| (*flag).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // Logs of an earlier drill would mix with this one's.
    let _ = std::fs::remove_dir_all(workspace.directory.join("crash"));
    std::fs::create_dir_all(workspace.directory.join("crash"))
        .context("failed to create target/bench/crash")?;

    let view = SharedView::default();
    let follower = tokio::spawn(follow(client.clone(), view.clone()));
    let stages: Arc<Vec<AtomicU8>> = Arc::new(
        (0..settings.runs)
            .map(|_| AtomicU8::new(Stage::NotStarted as u8))
            .collect(),
    );
    let ended = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    // The runs, `in_flight` at a time, each with its own random waits.
    let runs = {
        let client = client.clone();
        let view = view.clone();
        let stages = stages.clone();
        let ended = ended.clone();
        let seed = settings.seed;
        let in_flight = settings.in_flight.max(1);
        let count = settings.runs;
        tokio::spawn(async move {
            use futures::StreamExt;
            futures::stream::iter(0..count)
                .map(|run| {
                    let client = client.clone();
                    let view = view.clone();
                    let stages = stages.clone();
                    let ended = ended.clone();
                    async move {
                        let mut rng =
                            Rng(seed ^ (run as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                        let outcome = drive(&client, &view, &stages[run], run, &mut rng).await;
                        ended.fetch_add(1, Ordering::Relaxed);
                        outcome
                    }
                })
                .buffer_unordered(in_flight)
                .collect::<Vec<anyhow::Result<()>>>()
                .await
        })
    };

    // The killer: start, live a random while, SIGKILL, again, until every run has ended.
    let mut killer = Rng(settings.seed);
    let mut aws = AwsSeen::default();
    let mut kills = 0u32;
    let mut kills_during = [0u32; 3];
    let mut last_read = Instant::now();
    let mut last_progress = Instant::now();
    let mut life = 0u32;
    let mut schedule = Vec::new();
    let operator = loop {
        let operator = Operator::start(
            workspace,
            &format!("crash/life-{life:04}"),
            &sandbox,
            &emulator,
            &flags,
        )
        .await?;
        life += 1;
        let lifetime = killer.between(Duration::from_millis(50), settings.longest_life);
        let until = Instant::now() + lifetime;
        while Instant::now() < until && ended.load(Ordering::Relaxed) < settings.runs {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if ended.load(Ordering::Relaxed) >= settings.runs {
            break operator;
        }
        let mut interrupted = [false; 3];
        for stage in stages.iter() {
            match stage.load(Ordering::Relaxed) {
                1 => interrupted[0] = true,
                2 => interrupted[1] = true,
                3 => interrupted[2] = true,
                _ => {}
            }
        }
        operator.kill().await?;
        kills += 1;
        schedule.push(format!(
            "life {life}: killed after {} ms, runs creating {}, starting {}, deleting {}",
            lifetime.as_millis(),
            interrupted[0],
            interrupted[1],
            interrupted[2]
        ));
        for (count, hit) in kills_during.iter_mut().zip(interrupted) {
            *count += u32::from(hit);
        }
        if last_read.elapsed() > Duration::from_secs(5) {
            aws.read(&emulator).await?;
            last_read = Instant::now();
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "crash: {}/{} runs ended, {kills} kills, {:.0} s",
                ended.load(Ordering::Relaxed),
                settings.runs,
                started.elapsed().as_secs_f64()
            );
            last_progress = Instant::now();
        }
    };
    let outcomes = runs.await.context("the crash-drill runs panicked")?;
    if let Some(Err(error)) = outcomes.iter().find(|outcome| outcome.is_err()) {
        anyhow::bail!("a crash-drill run failed: {error:#}");
    }
    let drill_seconds = started.elapsed().as_secs_f64();
    let schedule_path = workspace.directory.join("crash/kills.txt");
    std::fs::write(&schedule_path, schedule.join("\n") + "\n")
        .with_context(|| format!("failed to write {}", schedule_path.display()))?;

    // Let the operator finish what the last runs began: a few long polls.
    let settle = Duration::from_secs_f64(3.0 * 54.0 / speed + 1.0);
    tokio::time::sleep(settle).await;
    aws.read(&emulator).await?;
    let cluster = look(&view);
    follower.abort();
    operator.kill().await?;

    let mut per_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (owner, _) in aws.datastores.values() {
        if owner.starts_with(&format!("{NAMESPACE}/crash-")) {
            *per_owner.entry(owner).or_default() += 1;
        }
    }
    let duplicate_datastores: usize = per_owner.values().map(|count| count - 1).sum();
    let mut per_job: BTreeMap<&str, usize> = BTreeMap::new();
    for name in aws.jobs.values() {
        *per_job.entry(name).or_default() += 1;
    }
    let duplicate_jobs: usize = per_job.values().map(|count| count - 1).sum();
    let orphaned: Vec<String> = aws
        .datastores
        .iter()
        .filter(|(_, (owner, status))| {
            let Some(name) = owner.strip_prefix(&format!("{NAMESPACE}/")) else {
                return false;
            };
            name.starts_with("crash-")
                && status != "DELETED"
                && !cluster
                    .objects
                    .contains_key(&(Kind::Datastore, name.to_owned()))
        })
        .map(|(id, (owner, status))| format!("{id} of {owner} is {status}"))
        .collect();
    let stuck: Vec<String> = cluster
        .objects
        .iter()
        .filter(|(_, shown)| shown.deleting)
        .map(|((kind, name), _)| format!("{kind:?} {name}"))
        .collect();
    let unconverged: Vec<String> = stages
        .iter()
        .enumerate()
        .filter(|(_, stage)| stage.load(Ordering::Relaxed) != Stage::Ended as u8)
        .map(|(run, _)| run_name(run))
        .collect();
    eprintln!(
        "crash: {} runs, {kills} kills in {drill_seconds:.0} s: {duplicate_datastores} duplicate datastores, {duplicate_jobs} duplicate jobs, {} orphaned, {} stuck finalizers, {} unconverged",
        settings.runs,
        orphaned.len(),
        stuck.len(),
        unconverged.len()
    );
    for problem in orphaned.iter().chain(&stuck).chain(&unconverged).take(20) {
        eprintln!("crash:   {problem}");
    }
    Ok(json!({
        "runs": settings.runs,
        "duplicate_datastores": duplicate_datastores,
        "duplicate_jobs": duplicate_jobs,
        "orphaned_datastores": orphaned.len(),
        "stuck_finalizers": stuck.len(),
        "unconverged": unconverged.len(),
        "kills": kills,
        "kills_during_creates": kills_during[0],
        "kills_during_starts": kills_during[1],
        "kills_during_deletes": kills_during[2],
        "seed": settings.seed,
        "kill_schedule": "target/bench/crash/kills.txt",
        "clock_speed": settings.clock_speed,
        "runs_at_once": settings.in_flight,
        "longest_life_seconds": settings.longest_life.as_secs_f64(),
        "drill_seconds": drill_seconds,
        "datastores_created": per_owner.len(),
        "jobs_started": per_job.len(),
        "problems": orphaned.iter().chain(&stuck).chain(&unconverged).collect::<Vec<_>>(),
        "note": "a run creates a FHIRDatastore and (3 runs in 4) a job, then deletes them (after the job is Ready, while it starts, or while the datastore is created); the operator is killed with SIGKILL after a random life and restarted at once; kills_during_* count the kills that found some run in that stage",
    }))
}

/// Plays one run's story; its stage is kept in `stage`.
async fn drive(
    client: &kube::Client,
    view: &SharedView,
    stage: &AtomicU8,
    run: usize,
    rng: &mut Rng,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    let story = Story::of(run);
    let name = run_name(run);
    let job = story.job(run).map(|kind| (kind, format!("{name}-job")));
    let set = |next: Stage| stage.store(next as u8, Ordering::Relaxed);

    set(Stage::Creating);
    create(client, Kind::Datastore, objects::datastore(&name)?).await?;
    if let Some((kind, job_name)) = &job {
        create(client, *kind, objects::job(*kind, job_name, &name)?).await?;
    }
    let in_time = match story {
        Story::DeleteWhileCreating => {
            tokio::time::sleep(rng.between(Duration::ZERO, Duration::from_millis(600))).await;
            true
        }
        Story::DeleteWhileStarting => {
            let ready = wait_for(view, deadline, |view| {
                shows_ready(view, Kind::Datastore, &name)
            })
            .await;
            set(Stage::Starting);
            tokio::time::sleep(rng.between(Duration::ZERO, Duration::from_millis(800))).await;
            ready
        }
        Story::Create => {
            let ready = wait_for(view, deadline, |view| {
                shows_ready(view, Kind::Datastore, &name)
            })
            .await;
            set(Stage::Starting);
            let (kind, job_name) = job.as_ref().context("a create run has a job")?;
            ready && wait_for(view, deadline, |view| shows_ready(view, *kind, job_name)).await
        }
    };
    if !in_time {
        set(Stage::Unconverged);
        return Ok(());
    }
    set(Stage::Deleting);
    let asked = Instant::now();
    if let Some((kind, job_name)) = &job {
        delete(client, *kind, job_name).await?;
    }
    delete(client, Kind::Datastore, &name).await?;
    let gone = wait_for(view, deadline, |view| {
        view.listed_from.is_some_and(|from| from > asked)
            && !view.objects.contains_key(&(Kind::Datastore, name.clone()))
            && job.as_ref().is_none_or(|(kind, job_name)| {
                !view.objects.contains_key(&(*kind, job_name.clone()))
            })
    })
    .await;
    set(if gone {
        Stage::Ended
    } else {
        Stage::Unconverged
    });
    Ok(())
}

fn shows_ready(view: &View, kind: Kind, name: &str) -> bool {
    view.objects
        .get(&(kind, name.to_owned()))
        .is_some_and(|shown| shown.ready)
}

/// Waits until `done` holds for the cluster view; false when the deadline passed first.
async fn wait_for(view: &SharedView, deadline: Instant, done: impl Fn(&View) -> bool) -> bool {
    loop {
        if done(&look(view)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create(
    client: &kube::Client,
    kind: Kind,
    object: kube::api::DynamicObject,
) -> anyhow::Result<()> {
    let name = object.metadata.name.clone().unwrap_or_default();
    kind.api(client)
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("failed to create {kind:?} {name}"))?;
    Ok(())
}

async fn delete(client: &kube::Client, kind: Kind, name: &str) -> anyhow::Result<()> {
    match kind
        .api(client)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error).with_context(|| format!("failed to delete {kind:?} {name}")),
    }
}
