'use strict';
// The customer list's filters: the sidebar on a wide screen, always open; on a narrow one
// they come before the rows (crm.css), folded so that the rows stay in view.
{
    const details = document.getElementById('customer-filter-details');
    if (details) {
        const narrow = window.matchMedia('(max-width: 767px)');
        const fit = () => { details.open = !narrow.matches; };
        fit();
        narrow.addEventListener('change', fit);
    }
}
