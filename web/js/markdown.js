// Model output is untrusted. Markdown is rendered by marked, then sanitised by DOMPurify into
// a DOM fragment (never re-parsed as a string): no script, no event handlers, no inline
// styles, no forms or frames, links only to http(s)/mailto and opened without an opener.
// Code blocks get syntax highlighting (highlight.js core and a few languages, applied to
// sanitised text only) and a copy button.

import { Marked } from '/assets/vendor/marked/marked.esm.js';
import DOMPurify from '/assets/vendor/dompurify/purify.es.js';
import hljs from '/assets/vendor/highlight/core.min.js';
import bash from '/assets/vendor/highlight/languages/bash.min.js';
import c from '/assets/vendor/highlight/languages/c.min.js';
import cpp from '/assets/vendor/highlight/languages/cpp.min.js';
import css from '/assets/vendor/highlight/languages/css.min.js';
import diff from '/assets/vendor/highlight/languages/diff.min.js';
import go from '/assets/vendor/highlight/languages/go.min.js';
import ini from '/assets/vendor/highlight/languages/ini.min.js';
import java from '/assets/vendor/highlight/languages/java.min.js';
import javascript from '/assets/vendor/highlight/languages/javascript.min.js';
import json from '/assets/vendor/highlight/languages/json.min.js';
import markdown from '/assets/vendor/highlight/languages/markdown.min.js';
import python from '/assets/vendor/highlight/languages/python.min.js';
import rust from '/assets/vendor/highlight/languages/rust.min.js';
import shell from '/assets/vendor/highlight/languages/shell.min.js';
import sql from '/assets/vendor/highlight/languages/sql.min.js';
import typescript from '/assets/vendor/highlight/languages/typescript.min.js';
import xml from '/assets/vendor/highlight/languages/xml.min.js';
import yaml from '/assets/vendor/highlight/languages/yaml.min.js';

const languages = { bash, c, cpp, css, diff, go, ini, java, javascript, json, markdown, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, lang] of Object.entries(languages)) hljs.registerLanguage(name, lang);
hljs.registerAliases(['sh', 'zsh'], { languageName: 'bash' });
hljs.registerAliases(['js', 'mjs'], { languageName: 'javascript' });
hljs.registerAliases(['ts'], { languageName: 'typescript' });
hljs.registerAliases(['py'], { languageName: 'python' });
hljs.registerAliases(['rs'], { languageName: 'rust' });
hljs.registerAliases(['html', 'svg'], { languageName: 'xml' });
hljs.registerAliases(['toml'], { languageName: 'ini' });
hljs.registerAliases(['yml'], { languageName: 'yaml' });

const marked = new Marked({ gfm: true, breaks: false, async: false });

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  USE_PROFILE: { html: true },
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'iframe', 'frame',
    'object', 'embed', 'link', 'meta', 'base', 'svg', 'math', 'video', 'audio', 'source', 'dialog'],
  FORBID_ATTR: ['style', 'srcset', 'action', 'formaction', 'ping', 'target'],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
};

/** Sanitised DOM fragment of `text` rendered as markdown. */
export function markdownFragment(text) {
  const html = marked.parse(String(text || ''));
  const fragment = DOMPurify.sanitize(html, PURIFY);
  for (const a of fragment.querySelectorAll('a[href]')) {
    a.setAttribute('rel', 'noopener noreferrer nofollow');
    a.setAttribute('target', '_blank');
  }
  // Remote images would leak the reader's address to whoever the model pointed at (and the
  // page's policy blocks them anyway): show them as links.
  for (const img of fragment.querySelectorAll('img')) {
    const src = img.getAttribute('src') || '';
    const link = document.createElement('a');
    link.textContent = `[image: ${img.getAttribute('alt') || src}]`;
    if (/^https?:/i.test(src)) {
      link.href = src;
      link.rel = 'noopener noreferrer nofollow';
      link.target = '_blank';
    }
    img.replaceWith(link);
  }
  return fragment;
}

/**
 * Render into `el`. `final` adds highlighting and copy buttons (skipped while a reply is still
 * streaming in, which re-renders often).
 */
export function renderMarkdown(el, text, { final = true } = {}) {
  el.replaceChildren(markdownFragment(text));
  for (const pre of el.querySelectorAll('pre')) decorateCode(pre, final);
}

function decorateCode(pre, final) {
  const code = pre.querySelector('code');
  if (!code) return;
  const lang = (code.className.match(/language-([\w+-]+)/) || [])[1] || '';
  const wrap = document.createElement('div');
  wrap.className = 'code-block';
  pre.replaceWith(wrap);
  wrap.append(pre);
  if (lang) {
    const tag = document.createElement('span');
    tag.className = 'code-lang';
    tag.textContent = lang;
    wrap.append(tag);
  }
  if (!final) return;
  if (lang && hljs.getLanguage(lang)) {
    const source = code.textContent;
    code.replaceChildren(DOMPurify.sanitize(hljs.highlight(source, { language: lang, ignoreIllegals: true }).value, PURIFY));
    code.classList.add('hljs');
  }
  const copy = document.createElement('button');
  copy.type = 'button';
  copy.className = 'btn copy-code';
  copy.textContent = 'Copy';
  copy.setAttribute('aria-label', lang ? `Copy the ${lang} code` : 'Copy the code');
  copy.addEventListener('click', async () => {
    const ok = await copyText(code.textContent);
    copy.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
  });
  wrap.append(copy);
}

/** Copy to the clipboard, falling back on a hidden textarea where the API is unavailable. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'visually-hidden';
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}
