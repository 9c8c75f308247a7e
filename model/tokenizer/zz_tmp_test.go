package tokenizer
import ("testing"; "os"; "path/filepath"; "strconv"; "strings"; "time"; "fmt")
func TestHang(t *testing.T){
	d := os.Getenv("FZDIR")
	ents, _ := os.ReadDir(d)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(d, e.Name()))
		lines := strings.Split(string(b), "\n")
		q := strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")")
		s, err := strconv.Unquote(q); if err != nil { t.Fatal(err) }
		for which := 0; which < 2; which++ {
			done := make(chan bool)
			go func(){ if which==0 { GPT2().Encode(s) } else { oracle.Encode(s) }; close(done) }()
			oracleOnce.Do(func(){ tiktokenIDs(t, "x") })
			select { case <-done: case <-time.After(3*time.Second): fmt.Printf("HANG which=%d %q\n", which, s); }
		}
	}
}
