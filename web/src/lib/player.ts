// The live player of the watch page: HTTP-FLV through mpegts.js where Media Source
// Extensions can play a live stream, HLS otherwise (hls.js, or the browser's own HLS where MSE
// is missing, as on iOS Safari before 17.1). It keeps near the live edge (catchup.ts),
// reconnects with back-off when the stream drops or is not there yet, and reports what it
// plays.
import type Mpegts from 'mpegts.js';
import type Hls from 'hls.js';
import { Backoff } from './backoff';
import { bufferedEndAt, catchUp } from './catchup';

export type PlayerState = 'connecting' | 'live' | 'offline' | 'reconnecting';
export type Tech = 'http-flv' | 'hls.js' | 'native-hls';

export interface PlayerStats {
  tech: Tech | null;
  width: number;
  height: number;
  kbps: number | null;
  fps: number | null;
  decodedFrames: number;
  droppedFrames: number;
  /// Buffered media ahead of the playhead (s): how far behind the live edge we are.
  bufferS: number;
  rate: number;
}

export interface LivePlayerOptions {
  flvUrl: string;
  hlsUrl: string | null;
  /// `hls` skips HTTP-FLV (the watch page's ?player=hls).
  prefer?: 'flv' | 'hls';
  /// Whether the channel is live now (the directory API). Asked before each attempt, so an
  /// offline channel costs one small JSON request per back-off step instead of a failed
  /// stream request, and the browser logs no 404s.
  isLive: () => Promise<boolean>;
  onState: (s: PlayerState) => void;
  onStats: (s: PlayerStats) => void;
  /// The first frame of the first successful attempt, in ms since navigation start.
  onFirstFrame?: (ms: number) => void;
}

/// How long the playhead may stand still while live before the stream counts as dropped.
const STALL_MS = 6000;

export class LivePlayer {
  private mpegts: Mpegts.Player | null = null;
  private hls: Hls | null = null;
  private readonly backoff = new Backoff({ baseMs: 500, maxMs: 5000 });
  private retry: ReturnType<typeof setTimeout> | null = null;
  private tick: ReturnType<typeof setInterval> | null = null;
  private state: PlayerState = 'connecting';
  private tech: Tech | null = null;
  private flvBroken = false;
  private kbps: number | null = null;
  private lastFrames = { at: 0, frames: 0 };
  private fps: number | null = null;
  private lastProgress = { at: 0, time: -1 };
  private firstFrameSeen = false;
  private attemptId = 0;
  private destroyed = false;
  private readonly listeners: [string, () => void][] = [];

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly opts: LivePlayerOptions,
  ) {
    const onFrame = () => {
      if (this.video.currentTime > 0 && this.state !== 'live') this.becameLive();
    };
    this.listen('playing', onFrame);
    this.listen('timeupdate', onFrame);
  }

  private listen(event: string, fn: () => void): void {
    this.video.addEventListener(event, fn);
    this.listeners.push([event, fn]);
  }

  start(): void {
    void this.attempt();
    this.tick = setInterval(() => this.onTick(), 250);
  }

  /// Tries at once (the chat said the live started), instead of at the next back-off step.
  retryNow(): void {
    if (this.state === 'live' || this.destroyed) return;
    this.backoff.reset();
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    void this.attempt();
  }

  destroy(): void {
    this.destroyed = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.tick) clearInterval(this.tick);
    this.teardown();
    for (const [e, fn] of this.listeners) this.video.removeEventListener(e, fn);
  }

  private setState(s: PlayerState): void {
    if (this.state === s) return;
    this.state = s;
    this.opts.onState(s);
  }

  private becameLive(): void {
    this.setState('live');
    this.backoff.reset();
    this.lastProgress = { at: performance.now(), time: this.video.currentTime };
    if (!this.firstFrameSeen) {
      this.firstFrameSeen = true;
      this.opts.onFirstFrame?.(performance.now());
    }
  }

  private async attempt(): Promise<void> {
    this.teardown();
    const id = ++this.attemptId;
    if (this.state !== 'offline') this.setState(this.state === 'live' ? 'reconnecting' : 'connecting');
    // The player's code loads while the API answers: both are on the way to the first frame.
    const mpegtsModule = this.opts.prefer !== 'hls' && !this.flvBroken ? import('mpegts.js') : null;
    const live = await this.opts.isLive().catch(() => false);
    if (id !== this.attemptId || this.destroyed) return;
    if (!live) {
      this.failed();
      return;
    }
    const useFlv = this.opts.prefer !== 'hls' && !this.flvBroken;
    if (useFlv) {
      const mpegts = (await (mpegtsModule ?? import('mpegts.js'))).default;
      if (id !== this.attemptId || this.destroyed) return;
      // Its errors reach us as events and show on the page; its console lines would only
      // fill the console of every viewer whose stream dropped.
      mpegts.LoggingControl.enableAll = false;
      if (mpegts.isSupported() && mpegts.getFeatureList().mseLivePlayback) {
        this.playFlv(mpegts);
        return;
      }
    }
    await this.playHls(id);
  }

  private playFlv(mpegts: typeof Mpegts): void {
    this.tech = 'http-flv';
    const player = mpegts.createPlayer(
      { type: 'flv', isLive: true, url: this.opts.flvUrl },
      {
        // No stash buffer: bytes go to the decoder as they come, which is what gives the
        // GOP cache's first frame at once. Catch-up is ours (catchup.ts), not mpegts.js's.
        enableStashBuffer: false,
        liveBufferLatencyChasing: false,
        autoCleanupSourceBuffer: true,
        lazyLoad: false,
      },
    );
    player.on(mpegts.Events.ERROR, (type: string) => {
      // A media error means this browser's MSE cannot play what we send (a codec it lacks):
      // HLS is the better bet from now on. A network error is just the stream not being there.
      if (type === mpegts.ErrorTypes.MEDIA_ERROR) this.flvBroken = true;
      this.failed();
    });
    player.on(mpegts.Events.LOADING_COMPLETE, () => this.failed());
    player.on(mpegts.Events.STATISTICS_INFO, (s: { speed?: number }) => {
      if (typeof s.speed === 'number') this.kbps = s.speed * 8;
    });
    player.attachMediaElement(this.video);
    player.load();
    this.play();
    this.mpegts = player;
  }

  private async playHls(id: number): Promise<void> {
    const hlsUrl = this.opts.hlsUrl;
    if (!hlsUrl) {
      this.failed();
      return;
    }
    const HlsCtor = (await import('hls.js')).default;
    if (id !== this.attemptId || this.destroyed) return;
    if (HlsCtor.isSupported()) {
      this.tech = 'hls.js';
      const hls = new HlsCtor({ liveSyncDurationCount: 2, maxLiveSyncPlaybackRate: 1.5, backBufferLength: 30 });
      hls.on(HlsCtor.Events.ERROR, (_e, data) => {
        if (data.fatal) this.failed();
      });
      hls.on(HlsCtor.Events.FRAG_LOADED, (_e, data) => {
        const bytes = data.frag.stats.total;
        if (data.frag.duration > 0) this.kbps = (bytes * 8) / data.frag.duration / 1000;
      });
      hls.loadSource(hlsUrl);
      hls.attachMedia(this.video);
      this.hls = hls;
      this.play();
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.tech = 'native-hls';
      const onError = () => this.failed();
      this.video.addEventListener('error', onError, { once: true });
      this.video.src = hlsUrl;
      this.play();
    } else {
      this.failed();
    }
  }

  private play(): void {
    this.video.play()?.catch(() => {
      // Autoplay refused (a browser policy): the page shows its play button instead.
    });
  }

  private failed(): void {
    if (this.destroyed) return;
    this.teardown();
    this.setState(this.state === 'live' || this.state === 'reconnecting' ? 'reconnecting' : 'offline');
    if (this.retry) clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.attempt();
    }, this.backoff.next());
  }

  private teardown(): void {
    this.attemptId += 1;
    if (this.mpegts) {
      const p = this.mpegts;
      this.mpegts = null;
      try {
        p.pause();
        p.unload();
        p.detachMediaElement();
        p.destroy();
      } catch {
        // A player that failed half-way may refuse some of these; it is dropped either way.
      }
    }
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.tech === 'native-hls') {
      this.video.removeAttribute('src');
      this.video.load();
    }
    this.kbps = null;
  }

  private onTick(): void {
    const v = this.video;
    const now = performance.now();
    const end = bufferedEndAt(v.buffered, v.currentTime);
    if (this.state === 'live') {
      if (this.tech === 'http-flv' && !v.paused) {
        const d = catchUp(v.currentTime, end, v.playbackRate);
        if (d.seekTo !== undefined) v.currentTime = d.seekTo;
        if (v.playbackRate !== d.rate) v.playbackRate = d.rate;
      }
      if (v.currentTime !== this.lastProgress.time || v.paused) {
        this.lastProgress = { at: now, time: v.currentTime };
      } else if (now - this.lastProgress.at > STALL_MS) {
        this.failed();
        return;
      }
    }
    const q = v.getVideoPlaybackQuality?.();
    const frames = q?.totalVideoFrames ?? 0;
    if (now - this.lastFrames.at >= 1000) {
      if (this.lastFrames.at > 0 && frames >= this.lastFrames.frames) {
        this.fps = ((frames - this.lastFrames.frames) * 1000) / (now - this.lastFrames.at);
      }
      this.lastFrames = { at: now, frames };
    }
    this.opts.onStats({
      tech: this.state === 'live' ? this.tech : null,
      width: v.videoWidth,
      height: v.videoHeight,
      kbps: this.kbps,
      fps: this.state === 'live' ? this.fps : null,
      decodedFrames: frames,
      droppedFrames: q?.droppedVideoFrames ?? 0,
      bufferS: Math.max(0, end - v.currentTime),
      rate: v.playbackRate,
    });
  }
}
