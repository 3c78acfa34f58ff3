// <gh-composer>: the message box. Enter sends (Shift+Enter for a new line); the Send button
// turns into Stop while a reply streams. Images (PNG, JPEG, GIF, WebP; pasted, dropped or
// picked) are previewed and can be removed before sending; larger ones are scaled down to the
// server's limit or refused. Audio (a file, or recorded with the microphone) is transcribed by
// the server and inserted as the message; the browser's speech recognition dictates where it
// exists. Emits gh-send {text, images} and gh-stop.

import { api, ApiError } from '../api.js';
import { describeError } from '../errors.js';
import { bytes } from '../format.js';
import { decorate, icon } from '../icons.js';

const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
const MAX_IMAGES = 4;
const MAX_SIDE = 2048;

function readDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

/** A JPEG no larger than the limit, or null when even a scaled copy is too big. */
async function shrink(file, limit) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return null;
  }
  let scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  for (let i = 0; i < 4; i += 1) {
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.85));
    if (blob && blob.size <= limit) return blob;
    scale *= 0.7;
  }
  return null;
}

export class GhComposer extends HTMLElement {
  constructor() {
    super();
    this.images = [];
    this.busy = false;
    this.limits = { max_image_bytes: 3 * 1024 * 1024, max_audio_bytes: 25 * 1024 * 1024 };
    this.transcriptionModel = 'default';
    this.recorder = null;
  }

  connectedCallback() {
    if (this.form) return;
    this.innerHTML = `
      <form class="composer-form" novalidate>
        <div class="attachments" aria-label="Attached images"></div>
        <p class="composer-note muted" role="status" aria-live="polite"></p>
        <div class="composer-row">
          <label for="composer-input" class="visually-hidden">Message</label>
          <textarea id="composer-input" rows="1" placeholder="Message Gatehouse" autocomplete="off"></textarea>
          <button type="submit" class="btn btn-primary send">Send</button>
        </div>
        <div class="composer-tools">
          <button type="button" class="btn btn-small attach-image" data-icon="image">Image</button>
          <input type="file" class="visually-hidden image-input" accept="${IMAGE_TYPES.join(',')}" multiple tabindex="-1" aria-hidden="true">
          <button type="button" class="btn btn-small attach-audio" data-icon="audio" aria-label="Transcribe an audio file">Audio file</button>
          <input type="file" class="visually-hidden audio-input" accept="audio/*,.webm,.m4a,.mp3,.wav,.ogg,.flac" tabindex="-1" aria-hidden="true">
          <button type="button" class="btn btn-small record" data-icon="mic" aria-label="Record a voice message" hidden>Record</button>
          <button type="button" class="btn btn-small dictate" data-icon="speech" aria-label="Dictate with speech recognition" hidden>Dictate</button>
        </div>
      </form>`;
    decorate(this);
    this.form = this.querySelector('form');
    this.input = this.querySelector('textarea');
    this.sendButton = this.querySelector('.send');
    this.note = this.querySelector('.composer-note');
    this.attachments = this.querySelector('.attachments');
    const imageInput = this.querySelector('.image-input');
    const audioInput = this.querySelector('.audio-input');
    this.querySelector('.attach-image').addEventListener('click', () => imageInput.click());
    this.querySelector('.attach-audio').addEventListener('click', () => audioInput.click());
    imageInput.addEventListener('change', () => { this.addImages([...imageInput.files]); imageInput.value = ''; });
    audioInput.addEventListener('change', () => {
      const f = audioInput.files[0];
      audioInput.value = '';
      if (f) this.transcribe(f);
    });
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener('input', () => this.autosize());
    this.input.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData ? e.clipboardData.files : [])];
      if (files.length) { e.preventDefault(); this.addImages(files); }
    });
    this.form.addEventListener('dragover', (e) => e.preventDefault());
    this.form.addEventListener('drop', (e) => {
      e.preventDefault();
      this.addImages([...e.dataTransfer.files]);
    });
    this.setupVoice();
  }

  setSession(session) {
    this.limits = session.limits || this.limits;
    this.transcriptionModel = session.transcription_model || 'default';
    this.querySelector('.attach-audio').hidden = !(session.features && session.features.transcription);
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
  }

  say(text, { error = false } = {}) {
    this.note.textContent = text;
    this.note.classList.toggle('form-error', error);
    this.note.classList.toggle('muted', !error);
  }

  setBusy(busy) {
    this.busy = busy;
    this.sendButton.textContent = busy ? 'Stop' : 'Send';
    this.sendButton.classList.toggle('btn-danger', busy);
    this.sendButton.classList.toggle('btn-primary', !busy);
    this.sendButton.setAttribute('aria-label', busy ? 'Stop the reply' : 'Send the message');
  }

  setText(text) {
    this.input.value = text;
    this.autosize();
  }

  focus() {
    this.input.focus();
  }

  submit() {
    if (this.busy) {
      this.dispatchEvent(new CustomEvent('gh-stop', { bubbles: true }));
      return;
    }
    const text = this.input.value.trim();
    if (!text && !this.images.length) {
      this.say('Type a message first.');
      return;
    }
    const images = this.images.map(({ url, name, size }) => ({ url, name, size }));
    this.dispatchEvent(new CustomEvent('gh-send', { bubbles: true, detail: { text, images } }));
    this.setText('');
    this.images = [];
    this.renderAttachments();
    this.say('');
  }

  async addImages(files) {
    const refused = [];
    for (const file of files) {
      if (!IMAGE_TYPES.includes(file.type)) {
        refused.push(`“${file.name}” is not an image (${file.type || 'unknown type'}). Only PNG, JPEG, GIF and WebP images can be attached.`);
        continue;
      }
      if (this.images.length >= MAX_IMAGES) {
        refused.push(`At most ${MAX_IMAGES} images per message.`);
        break;
      }
      let blob = file;
      const limit = this.limits.max_image_bytes;
      if (file.size > limit) {
        blob = await shrink(file, limit);
        if (!blob) {
          refused.push(`“${file.name}” is ${bytes(file.size)}; images up to ${bytes(limit)} can be sent.`);
          continue;
        }
      }
      this.images.push({ url: await readDataUrl(blob), name: file.name, size: blob.size });
    }
    this.renderAttachments();
    this.say(refused.join(' '), { error: refused.length > 0 });
  }

  renderAttachments() {
    this.attachments.replaceChildren(...this.images.map((img, i) => {
      const wrap = document.createElement('div');
      wrap.className = 'attachment';
      const el = document.createElement('img');
      el.src = img.url;
      el.alt = `Preview of ${img.name}`;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'btn';
      remove.append(icon('close', 14));
      remove.setAttribute('aria-label', `Remove image ${img.name}`);
      remove.addEventListener('click', () => {
        this.images.splice(i, 1);
        this.renderAttachments();
        this.say(`Removed ${img.name}.`);
        this.input.focus();
      });
      wrap.append(el, remove);
      return wrap;
    }));
  }

  /** Send audio to the server's speech-to-text and put the transcript in the box. */
  async transcribe(file) {
    const audio = file.type.startsWith('audio/') || file.type === 'video/webm'
      || /\.(webm|m4a|mp3|mp4|mpeg|mpga|oga|ogg|wav|flac)$/i.test(file.name);
    if (!audio) {
      this.say(`“${file.name}” is not an audio file.`, { error: true });
      return;
    }
    if (file.size > this.limits.max_audio_bytes) {
      this.say(`“${file.name}” is ${bytes(file.size)}; audio up to ${bytes(this.limits.max_audio_bytes)} can be transcribed.`, { error: true });
      return;
    }
    this.say(`Transcribing ${file.name}…`);
    const form = new FormData();
    form.append('file', file, file.name);
    form.append('model', this.transcriptionModel);
    form.append('response_format', 'json');
    try {
      const result = await api('/web/api/audio/transcriptions', { method: 'POST', body: form });
      const text = this.input.value.trim();
      this.setText(text ? `${text} ${result.text}` : result.text);
      this.say('Transcript inserted: check it and press Send.');
      this.input.focus();
    } catch (err) {
      const info = describeError(err instanceof ApiError ? err : new ApiError({ code: 'network_error' }));
      this.say(`Transcription failed: ${info.title}. ${info.detail}`, { error: true });
    }
  }

  setupVoice() {
    const record = this.querySelector('.record');
    if (navigator.mediaDevices && window.MediaRecorder) {
      record.hidden = false;
      record.addEventListener('click', () => this.toggleRecording(record));
    }
    const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
    const dictate = this.querySelector('.dictate');
    if (!Recognition) return;
    dictate.hidden = false;
    let active = null;
    dictate.addEventListener('click', () => {
      if (active) { active.stop(); return; }
      const r = new Recognition();
      r.interimResults = true;
      r.lang = document.documentElement.lang || 'en';
      const before = this.input.value;
      r.onresult = (e) => {
        const said = [...e.results].map((x) => x[0].transcript).join('');
        this.setText(before ? `${before} ${said}` : said);
      };
      r.onerror = (e) => this.say(`Dictation stopped: ${e.error}.`, { error: true });
      r.onend = () => {
        active = null;
        dictate.lastChild.textContent = 'Dictate';
        dictate.setAttribute('aria-pressed', 'false');
      };
      active = r;
      dictate.lastChild.textContent = 'Stop dictation';
      dictate.setAttribute('aria-pressed', 'true');
      this.say('Listening…');
      r.start();
    });
  }

  async toggleRecording(button) {
    if (this.recorder) {
      this.recorder.stop();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      this.say(`The microphone is not available (${err.name}).`, { error: true });
      return;
    }
    const chunks = [];
    const rec = new MediaRecorder(stream);
    rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    rec.onstop = () => {
      for (const t of stream.getTracks()) t.stop();
      this.recorder = null;
      button.lastChild.textContent = 'Record';
      button.setAttribute('aria-pressed', 'false');
      const type = (rec.mimeType || 'audio/webm').split(';')[0];
      const ext = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
      this.transcribe(new File(chunks, `recording.${ext}`, { type }));
    };
    this.recorder = rec;
    rec.start();
    button.lastChild.textContent = 'Stop recording';
    button.setAttribute('aria-pressed', 'true');
    this.say('Recording… press Stop recording when done.');
  }
}

customElements.define('gh-composer', GhComposer);
