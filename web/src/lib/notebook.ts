// In a Jupyter notebook (`nc.show(atlas)`, src/neurocarta/viewer/notebook.py) the page is opened
// with ?notebook=<token>: it then reports its state (the URL hash, which holds the selection) to
// the notebook's own endpoint, so Python can read `view.selection`. Anywhere else this does
// nothing: `neurocarta serve` has no such endpoint and stays read-only.

const STATE_PATH = '_notebook/state'; // notebook.py STATE_PATH, relative to the page
const TOKEN_HEADER = 'X-Neurocarta-Notebook'; // notebook.py STATE_TOKEN_HEADER
const token = new URLSearchParams(location.search).get('notebook');

let sent = '';
let timer: ReturnType<typeof setTimeout> | undefined;

/** Report the state `hash` to the notebook (debounced: a lasso drag or a slider sends once). */
export function reportToNotebook(hash: string): void {
  if (!token || hash === sent) return;
  clearTimeout(timer);
  timer = setTimeout(() => {
    sent = hash;
    fetch(new URL(STATE_PATH, location.href), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', [TOKEN_HEADER]: token },
      body: JSON.stringify({ hash }),
    }).catch(() => { sent = ''; }); // the kernel went away: try again on the next change
  }, 150);
}
