// The page's title: "vnrit · :99 · 1920x1080", the display's name (from the server's hello)
// and the size of the picture as it arrives (it follows the screen's resizes), so a tab or
// window list tells several desktops apart.

export class PageTitle {
  /** @param {HTMLVideoElement} video */
  constructor(video) {
    this.video = video;
    this.display = '';
    video.addEventListener('resize', () => this.update());
    video.addEventListener('loadedmetadata', () => this.update());
  }

  /** @param {unknown} name the display name the server sent (ignored unless a short string) */
  setDisplay(name) {
    this.display = typeof name === 'string' && name.length <= 64 ? name : '';
    this.update();
  }

  update() {
    const parts = ['vnrit'];
    if (this.display) parts.push(this.display);
    const { videoWidth: w, videoHeight: h } = this.video;
    if (w > 0 && h > 0) parts.push(`${w}x${h}`);
    document.title = parts.join(' · ');
  }
}
