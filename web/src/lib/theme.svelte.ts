// Light and dark theme: the system preference first, then the user's choice, remembered.
export const theme = $state({ dark: false });

export function initTheme(): void {
  let saved: string | null = null;
  try { saved = localStorage.getItem('nc-theme'); } catch { /* storage blocked (file://) */ }
  theme.dark = saved ? saved === 'dark' : window.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
  apply();
}

export function toggleTheme(): void {
  theme.dark = !theme.dark;
  try { localStorage.setItem('nc-theme', theme.dark ? 'dark' : 'light'); } catch { /* ignore */ }
  apply();
}

function apply(): void {
  document.documentElement.dataset.theme = theme.dark ? 'dark' : 'light';
}
