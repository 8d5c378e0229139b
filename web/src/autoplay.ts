// Starting a video with sound: browsers may refuse audible autoplay until the user interacts
// with the page. Then the video plays muted and the page offers an unmute button.

export interface AutoplayEvents {
  log(level: 'warn', message: string): void;
  /** The browser refused audible autoplay; the video plays muted. */
  autoplayMuted(): void;
}

/** `video.play()` with sound, else muted. `current()` is false once the caller moved on. */
export async function playWithSound(video: HTMLVideoElement, events: AutoplayEvents, current: () => boolean): Promise<void> {
  try {
    await video.play();
  } catch (e) {
    if (!current()) return;
    const name = (e as { name?: string })?.name;
    if (name === 'NotAllowedError') {
      video.muted = true;
      try {
        await video.play();
      } catch (e2) {
        events.log('warn', `player: muted autoplay refused too: ${String(e2)}`);
      }
      events.autoplayMuted();
    } else if (name !== 'AbortError') {
      events.log('warn', `player: play() failed: ${String(e)}`);
    }
  }
}
