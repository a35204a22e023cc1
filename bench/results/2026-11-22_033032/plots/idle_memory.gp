set terminal pngcairo size 1000,560 font "sans,10" noenhanced
set output "idle_memory.png"
set title "Proxy memory per idle client (10,000 clients)"
set ylabel "bytes per client (RSS)"
set datafile missing '-'
set style fill solid
set boxwidth 0.400
set yrange [0:*]
set xrange [-0.6:0.6]
set xtics ("10,000 idle clients" 0)
set grid ytics
set key top right
plot "idle_memory.dat" using ($0+-0.200):2:(0.360) with boxes fs solid 0.85 lc rgb "#1f77b4" title "PgBouncer 1.18", \
     "idle_memory.dat" using ($0+-0.200):2:3:4 with yerrorbars lc rgb "black" pt 0 notitle, \
     "idle_memory.dat" using ($0+0.200):5:(0.360) with boxes fs solid 0.85 lc rgb "#d62728" title "heliosproxy", \
     "idle_memory.dat" using ($0+0.200):5:6:7 with yerrorbars lc rgb "black" pt 0 notitle, \
     600.0 with lines dt 2 lw 2 lc rgb "#2ca02c" title "target ≤ 600 B"
